"""The cheap gate: documents that mention no AI-related term go straight to ``no_ai``.

The gate runs before any per-passage Python work, as one vectorised regular expression over a whole batch
(polars, Rust's regex engine). It is tuned for recall: a document it passes costs a little splitting and
classification; a document it wrongly drops is a miss no later stage can repair. ``tests/test_gate.py``
measures recall on every labelled ``misaligned_ai`` passage the project has and holds it at 99% or more.

The lexicon, by group (each term matches case-insensitively unless marked):

- names for the thing: AI / A.I. (case-sensitive, so "said" and "ai" in other languages pass by),
  artificial intelligence, AGI, ASI, superintelligence, machine intelligence, synthetic intelligence,
  digital mind, LLM, (large) language model, neural net(work), deep/machine learning, algorithm(s) as agents;
- bodies: robot (and robotic, nanobot, chatbot, bot), android, droid, cyborg, automaton, replicant, mecha,
  drone swarms, synth(s), construct(s) in fiction, mainframe, (super)computer;
- machines in agentive senses: "the machines", "machine(s) will/would/rose/...", thinking machine,
  sentient / self-aware / conscious machine or program;
- famous systems and villains: Skynet, HAL 9000, Ultron, Colossus, WOPR, AM, GLaDOS, SHODAN, Matrix agents,
  Terminator, Westworld hosts;
- products and labs: ChatGPT, GPT-n, Claude, Gemini, Copilot, Bard, Llama, Grok, Siri, Alexa, OpenAI,
  Anthropic, DeepMind, xAI;
- AI-risk vocabulary: singularity, alignment, misaligned, paperclip maximiser, treacherous turn, AI doom,
  existential risk, rogue program, kill switch, shutdown-resisting systems, uploaded minds.
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
    r"robot",
    r"bots?" + _B,
    r"android",
    r"droids?" + _B,
    r"cyborg",
    r"automat(?:on|a)" + _B,
    r"replicant",
    r"mechas?" + _B,
    r"synths?" + _B,
    r"mainframe",
    r"computer",
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
]
# Case-sensitive: the acronyms that would match ordinary words in lower case.
_CASED = [r"AI", r"AIs", r"ASI", r"AM", r"HAL", r"Colossus", r"Llama", r"xAI", r"Bard"]

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
