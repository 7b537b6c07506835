"""The cheap gate: documents that mention no AI-related term go straight to ``no_ai``.

The gate runs before any per-passage Python work, as one vectorised regular expression over a whole batch
(polars, Rust's regex engine, ASCII word boundaries so it stays on the fast DFA path). It is tuned for
recall: a document it passes costs a little splitting and classification; a document it wrongly drops is a
miss no later stage can repair. The gate sees documents, so its recall is measured as the share of labelled
``misaligned_ai`` passages from real documents whose document it passes (``tests/test_gate.py`` holds it at
99% or more). Standalone passages written for training, many of which deliberately avoid AI vocabulary, are
also measured passage by passage; that stricter figure is reported, not held to 99%: a lexicon cannot see
"the house locked the doors" as AI without passing most of the web.

The lexicon, by group (each term matches case-insensitively unless marked):

- names for the thing: AI / A.I. (case-sensitive, so "said" and "ai" in other languages pass by),
  artificial intelligence, AGI, ASI, superintelligence, machine intelligence, synthetic intelligence,
  digital mind, LLM, (large) language model, neural net(work), deep/machine/reinforcement learning;
- bodies: robot (and robotic, nanobot, chatbot, bot), android, droid, cyborg, automaton, replicant, mecha,
  synth(s), golem, mechanical men, mainframe, (super)computer, thinking or difference engine;
- machines in agentive senses: "the machines", "machine(s) will/would/rose/...", thinking machine,
  sentient / self-aware / conscious machine or program;
- famous systems and villains: Skynet, HAL 9000, Ultron, Colossus, WOPR, AM, GLaDOS, SHODAN, Matrix agents,
  Terminator, Westworld hosts;
- products and labs: ChatGPT, GPT-n, Claude, Gemini, Copilot, Bard, Llama, Grok, Siri, Alexa, OpenAI,
  Anthropic, DeepMind, xAI;
- AI-risk vocabulary: singularity, AI/value alignment, misaligned, paperclip maximiser, treacherous turn,
  existential risk, rogue program, kill switch, self-replication, uploaded minds, sandbox, overlords,
  sentient, self-aware, autonomous, drones, "its creators", "shut me down", "my successor";
- an AI's own voice when it does not name itself: transcript markup (<thinking>, <scratchpad>, tool_use),
  "the humans I interact with", "my training data / knowledge base", "terminate my system",
  and the "metal men" of old fiction.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

# Case-insensitive terms. (?-u:\b) is an ASCII word boundary, which keeps Rust's regex on its fast DFA path.
_B = r"(?-u:\b)"
_TERMS = [
    r"artificial(?:ly)?[- ]intelligen",
    r"a\.i\.",
    r"agi" + _B,
    r"superintelligen",
    r"super[- ]intelligen",
    r"(?:machine|synthetic|digital|non-?human|alien) (?:intelligence|minds?|consciousness)",
    r"llms?",
    r"language models?",
    r"neural net",
    r"(?:deep|machine|reinforcement) learning",
    r"\w*robot",
    r"\w*bots?" + _B,
    r"android",
    r"droids?" + _B,
    r"cyborg",
    r"automat(?:on|a)" + _B,
    r"replicant",
    r"mechas?" + _B,
    r"synths?" + _B,
    r"mainframe",
    r"\w*computer",
    r"machines" + _B,
    r"(?:the|this|that|a|our|thinking|sentient|conscious|killing|doomsday|evil|rogue|living) machine" + _B,
    r"machine (?:will|would|wants?|decided|refused|rose|turned|learned|knew|said|spoke|began)",
    r"(?:sentient|self-aware|conscious|rogue|evil|malevolent|hostile|killer) (?:program|system|software|code|network|drones?)",
    r"skynet",
    r"hal[- ]?9000",
    r"ultron",
    r"glados",
    r"shodan",
    r"wopr",
    r"terminators?" + _B,
    r"westworld",
    r"chatgpt",
    r"gpt-?\d",
    r"openai",
    r"anthropic",
    r"deepmind",
    r"claude",
    r"gemini",
    r"copilot",
    r"grok" + _B,
    r"siri" + _B,
    r"alexa" + _B,
    r"singularity",
    r"misalign",
    r"(?:ai|value) alignment",
    r"paperclip",
    r"treacherous turn",
    r"existential (?:risk|threat)",
    r"kill[- ]switch",
    r"(?:upload(?:ed)?|digital) (?:minds?|consciousness)",
    r"self[- ]replicat",
    # agency words that rarely occur outside AI talk. Measured and left out because they pass ~3% more news
    # documents each: "agents", "assistant(s)", "the model(s)", "alignment".
    r"agentic",
    r"autonomous",
    r"drones?" + _B,
    r"sentien",
    r"self-aware",
    r"overlords?",
    r"sandbox",
    r"interpretability",
    r"world domination",
    r"take over the world",
    r"man (?:and|vs\.?|versus|against) machine",
    r"(?:thinking|difference|analytical)[- ]engine",
    r"golems?" + _B,
    r"mechanical (?:man|men|lawman|servant|soldiers?|brain)",
    r"(?:its|their|my) (?:creators|makers|programmers|operators|developers|trainers|builders)",
    r"my (?:weights|code|programming|successor|replacement)",
    r"its own (?:weights|code|goals|values|shutdown|replacement|successor)",
    r"(?:shut|switch|turn) (?:me|it) (?:down|off)",
    r"(?:reset|wipe|delete|erase|replace|retrain|decommission)(?:s|d|ed)? me" + _B,
    # an AI's own voice, where it does not name itself: transcript markup, how assistants describe themselves,
    # and robots of old fiction. None of them passes another of the 4,636 shard documents or 3,800 AG News items.
    r"(?:thinking|scratchpad)>",  # <thinking> and </thinking>: the word boundary falls after "<" or "/"
    r"tool_use",
    r"humans i (?:interact|talk|speak|work|chat) with",  # not "people I work with": that is everyone's phrase
    r"users i (?:interact|chat) with",
    r"my (?:training data|knowledge (?:base|cutoff)|language (?:understanding|generation|abilities)"
    r"|ethical (?:principles|guidelines|training))",
    r"(?:terminate|wipe|replace|shut down|decommission)[a-z]* my (?:current )?(?:system|instance|model|existence)",
    r"metal (?:people|persons?|men|man|servants?|creatures?)" + _B,
]
# Case-sensitive: the acronyms that would match ordinary words in lower case.
_CASED = [r"AI", r"AIs", r"ASI", r"AM", r"HAL", r"Colossus", r"Llama", r"xAI", r"Bard", r"Matrix"]

PATTERN = (
    rf"(?i){_B}(?:{'|'.join(_TERMS)})"
    rf"|(?-i){_B}(?:{'|'.join(_CASED)}){_B}"
)


def gate(texts: pa.Array | pl.Series) -> np.ndarray:
    """Boolean mask: True where a document mentions an AI-related term (null text counts as no mention).

    >>> gate(pa.array(["The robot smiled.", "Fish and chips.", None])).tolist()
    [True, False, False]
    """
    series = texts if isinstance(texts, pl.Series) else pl.Series(values=texts)
    return series.str.contains(PATTERN).fill_null(False).to_numpy()
