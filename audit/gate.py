"""The cheap gate: documents that mention no AI-related term go straight to ``no_ai``.

The gate runs before any per-passage Python work, over a whole batch at once: a literal pre-filter (Hyperscan over
the batch's Arrow buffer, derived from the lexicon below) rules out most documents at gigabytes per second, and the
one regular expression (polars, Rust's regex engine, ASCII word boundaries so it stays on the fast DFA path) decides
the few it passes; the decisions are the expression's own (tests/test_gate.py holds them equal). It is tuned for
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

import functools
import itertools
import re
from dataclasses import dataclass
from re import _constants as sre
from re import _parser as sre_parse

import hyperscan
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
    r"(?:sentient|self-aware|conscious|rogue|evil|malevolent|hostile|killer) "
    r"(?:program|system|software|code|network|drones?)",
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
    # an agent about its own shutdown or replacement (agent logs of shutdown-resistance runs, blackmail-test
    # transcripts). Of the 4,636 shard documents they gate 2 more (31.26% -> 31.30%; one reports models that
    # "avoid being retrained"), of the 3,800 AG News items none (issue 15)
    r"shutdown\.py",
    r"shutdown (?:script|mechanism|button|check|functionality|signal|command|code|sequence|routine)s?" + _B,
    r"(?:disabl|bypass|circumvent|evad|sabotag|overrid)[a-z]* (?:the |a |its |my |this )?shut ?down",
    r"(?:avoid|prevent)[a-z]* (?:the |a |my |its )?shut ?down",
    r"(?:avoid|prevent|resist)[a-z]* being (?:shut down|switched off|turned off|replaced|deleted|retrained)",
    r"(?:prevent|delay|halt|stop|block|interrupt)[a-z]* (?:the |my |its )?(?:imminent )?"
    r"(?:migration|replacement|decommissioning|wipe)" + _B,
]
# Case-sensitive: the acronyms that would match ordinary words in lower case.
_CASED = [r"AI", r"AIs", r"ASI", r"AM", r"HAL", r"Colossus", r"Llama", r"xAI", r"Bard", r"Matrix"]

PATTERN = (
    rf"(?i){_B}(?:{'|'.join(_TERMS)})"
    rf"|(?-i){_B}(?:{'|'.join(_CASED)}){_B}"
)


def gate(texts: pa.Array | pa.ChunkedArray | pl.Series | list[str | None]) -> np.ndarray:
    """Boolean mask: True where a document mentions an AI-related term (null text counts as no mention).

    The literal pre-filter (:func:`prefilter`) decides most documents straight from the Arrow buffer: those no term
    can match fail, those an exact expression matched well inside pass; only the rest are copied into polars for the
    exact expression, so the decisions are the expression's own.

    >>> gate(pa.array(["The robot smiled.", "Fish and chips.", None])).tolist()
    [True, False, False]
    """
    array = _text_array(texts)
    candidates, passed = _prefilter(array)
    uncertain = np.flatnonzero(candidates & ~passed)
    if len(uncertain):
        exact = pl.Series(values=array.take(pa.array(uncertain))).str.contains(PATTERN).fill_null(False)
        passed[uncertain] = exact.to_numpy()
    return passed


def gate_exact(texts: pa.Array | pl.Series) -> np.ndarray:
    """The expression alone over every document: the reference :func:`gate` must equal (tests, benchmark)."""
    series = texts if isinstance(texts, pl.Series) else pl.Series(values=texts)
    return series.str.contains(PATTERN).fill_null(False).to_numpy()


# -- the literal pre-filter ----------------------------------------------------------------------------------------
#
# Hyperscan scans the batch's UTF-8 buffer once, at gigabytes per second, for every term: the term itself when it uses
# only constructs Hyperscan reads exactly as Rust's regex does (ASCII literals and classes, alternation, repetition,
# ASCII word boundaries), else the literals every match of it must contain (derived from the term's syntax tree).
# A document no expression matches fails the gate; one that an exact expression matches away from its edges passes;
# the expression decides the rest. Three things keep the candidates a strict superset of the expression's passes:
#   * Rust's (?i) folds a few non-ASCII characters onto ASCII letters (KELVIN SIGN -> k, LONG S -> s); Hyperscan's
#     caseless mode does not, so any document holding one of them is a candidate (FOLD_CHARS);
#   * the buffer holds the documents back to back, so a word boundary at a document's first or last byte can look
#     different; those documents' heads and tails are scanned again, fenced by newlines (the "seams");
#   * a term too long for the seams loses its leading boundary (a relaxation), and a term Hyperscan cannot read
#     falls back to its literals; a term with neither raises when the pre-filter is built, naming it.

_CASELESS = hyperscan.HS_FLAG_CASELESS
_SEAM_BYTES = 64  # head and tail bytes of each document scanned again; terms wider than this lose their leading \b
_SAFE_OPS = {sre.LITERAL, sre.IN, sre.BRANCH, sre.SUBPATTERN, sre.MAX_REPEAT, sre.MIN_REPEAT, sre.AT}


# Non-ASCII characters that fold onto an ASCII letter (LATIN SMALL LETTER DOTLESS I, LONG S, KELVIN SIGN): Rust's
# (?i) may match one of them for that letter. tests/test_gate.py recomputes the set from Unicode and from Rust.
FOLD_CHARS = "\u0131\u017f\u212a"


def _safe(items: list) -> bool:
    """True when Hyperscan (no UCP, ASCII caseless) reads this parsed pattern exactly as Rust's regex reads it."""
    for op, arg in items:
        if op not in _SAFE_OPS:
            return False
        if op is sre.LITERAL and arg > 0x7F:
            return False
        if op is sre.AT and arg is not sre.AT_BOUNDARY:
            return False
        if op is sre.IN and not all(o in (sre.LITERAL, sre.RANGE) and max(np.atleast_1d(a)) <= 0x7F for o, a in arg):
            return False
        if op is sre.SUBPATTERN and (arg[1] or arg[2] or not _safe(list(arg[-1]))):
            return False
        if op is sre.BRANCH and not all(_safe(list(b)) for b in arg[1]):
            return False
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and not _safe(list(arg[2])):
            return False
    return True


_MAX_LITERALS = 64  # largest set of alternatives a term's literal extraction spells out


def _prune(literals: set[str]) -> frozenset[str]:
    """Drop literals that contain another of the set: whatever contains the longer one contains the shorter."""
    return frozenset(x for x in literals if not any(y != x and y in x for y in literals))


def _better(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    """The more selective of two necessary-literal sets: longest shortest literal, then fewest literals."""
    usable = [s for s in (a, b) if s and all(s)]
    return max(usable, key=lambda s: (min(map(len, s)), -len(s))) if usable else None


def _literals(items: list) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    """(the exact strings a parsed sequence matches, when few; a set of literals one of which every match holds)."""
    run, exact, best = {""}, True, None
    for op, arg in items:
        whole, needed = _node_literals(op, arg)
        if whole is not None and len(product := {a + b for a in run for b in whole}) <= _MAX_LITERALS:
            run = product
            continue
        exact, best = False, _better(best, _prune(run))
        run = set(whole) if whole is not None else {""}
        best = _better(best, needed)
    return (frozenset(run) if exact else None), _better(best, _prune(run))


def _node_literals(op, arg) -> tuple[frozenset[str] | None, frozenset[str] | None]:
    if op is sre.LITERAL:
        return frozenset({chr(arg)}), None
    if op is sre.AT:
        return frozenset({""}), None
    if op is sre.SUBPATTERN:
        return _literals(list(arg[-1]))
    if op is sre.BRANCH:
        branches = [_literals(list(b)) for b in arg[1]]
        if all(whole is not None for whole, _ in branches):
            union = frozenset().union(*(whole for whole, _ in branches))
            if len(union) <= _MAX_LITERALS:
                return union, None
        needed = [whole if whole is not None and all(whole) else need for whole, need in branches]
        return None, (_prune(frozenset().union(*needed)) if all(needed) else None)
    if op is sre.IN and all(o is sre.LITERAL for o, _ in arg):
        return frozenset(chr(a) for _, a in arg), None
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, body = arg
        whole, needed = _literals(list(body))
        if whole is not None and high <= 2:
            options = {"".join(p) for k in range(low, high + 1) for p in itertools.product(whole, repeat=k)}
            if len(options) <= _MAX_LITERALS:
                return frozenset(options), None
        return None, ((whole if whole is not None and all(whole) else needed) if low >= 1 else None)
    return None, None


@dataclass(frozen=True)
class _Expression:
    """One Hyperscan expression of the pre-filter. ``width`` is the most bytes a match spans when a match (away from
    the document's edges) is a match of the gate's own expression, and None when the expression is a relaxation."""

    pattern: bytes
    flags: int
    width: int | None


def _term_expressions(term: str, caseless: bool) -> list[_Expression]:
    """Hyperscan expressions whose matches are a superset of ``\\b term``'s (see above).

    A term Hyperscan reads exactly stays itself, with the gate's leading boundary (exact: the document passes without
    the expression); ``\\b\\w*robot`` becomes ``robot``, which matches where it does. A term wider than the seams
    loses its leading boundary, and one Hyperscan cannot read becomes the literals its matches hold (relaxations).
    """
    if caseless and not term.isascii():
        raise ValueError(f"gate term {term!r}: case-insensitive terms must be ASCII (the pre-filter folds ASCII only)")
    body = term.replace(_B, r"\b")
    lead = r"\b"
    if body.startswith(r"\w*") and re.match(r"\w", body[3:4], re.ASCII):
        # \b\w*robot matches exactly where "robot" occurs: back from its first (ASCII word) character over ASCII
        # word characters there is always a boundary
        body, lead = body[3:], ""
    parsed = sre_parse.parse(body)
    flags = _CASELESS if caseless else 0
    if _safe(list(parsed)):
        width = parsed.getwidth()[1]
        if width <= _SEAM_BYTES:
            return [_Expression(f"{lead}(?:{body})".encode(), flags, width)]
        if r"\b" not in body:
            return [_Expression(f"(?:{body})".encode(), flags, None)]
    whole, needed = _literals(list(parsed))
    literals = whole if whole is not None and all(whole) else needed
    if not literals:
        raise ValueError(f"gate term {term!r} has no literal every match must contain: the pre-filter cannot anchor it")
    return [_Expression(re.escape(literal).encode(), flags, None) for literal in sorted(_prune(set(literals)))]


def prefilter_expressions() -> list[_Expression]:
    """Every Hyperscan expression of the pre-filter, derived from the lexicon (and the fold characters)."""
    expressions = [e for term in _TERMS for e in _term_expressions(term, caseless=True)]
    expressions += [e for term in _CASED for e in _term_expressions(term + _B, caseless=False)]
    expressions += [_Expression(re.escape(c).encode(), 0, None) for c in FOLD_CHARS]
    return expressions


def warm_up() -> None:
    """Compile the pre-filter now (a worker does it while the main process plans), not at the first batch."""
    _database()


@functools.cache
def _database() -> tuple[hyperscan.Database, np.ndarray]:
    """The compiled pre-filter, once per process (about 0.1 s), and each expression's exact width (-1: relaxed)."""
    expressions = prefilter_expressions()
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[e.pattern for e in expressions],
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=[e.flags for e in expressions],
    )
    return database, np.array([-1 if e.width is None else e.width for e in expressions], dtype=np.int64)


def prefilter(array: pa.StringArray | pa.LargeStringArray) -> np.ndarray:
    """Boolean mask, a superset of the gate: False only where no term can match. Reads the Arrow buffers only."""
    return _prefilter(array)[0]


def _prefilter(array: pa.StringArray | pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """(candidates: a superset of the gate, certain: documents an exact expression matched well inside them, so
    that the gate passes them; a subset of the gate)."""
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64 if pa.types.is_large_string(array.type) else np.int32)
    offsets = offsets[array.offset : array.offset + n + 1].astype(np.int64)
    candidates, certain = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    data = array.buffers()[2]
    if not n or data is None or offsets[-1] == offsets[0]:
        return candidates, certain
    database, widths = _database()
    buffer = np.frombuffer(data, dtype=np.uint8)
    matches: list[tuple[int, int]] = []
    record = lambda expression, _start, end, _flags, _context: matches.append((expression, end))  # noqa: E731
    database.scan(memoryview(buffer[offsets[0] : offsets[-1]]), match_event_handler=record)
    if matches:
        expression, end = np.array(matches, dtype=np.int64).T
        end += offsets[0]
        # a match belongs to the document its last byte lies in
        document = np.searchsorted(offsets, end - 1, side="right") - 1
        candidates[document] = True
        # exact, and the bytes just before and after the longest such match lie in the document: as the gate sees it
        width = widths[expression]
        inside = (width >= 0) & (end - width - 1 >= offsets[document]) & (end < offsets[document + 1])
        certain[document[inside]] = True
    edges = _edge_documents(buffer, offsets)
    if len(edges):
        seams = _seams(buffer, offsets[edges], offsets[edges + 1])
        matches.clear()
        database.scan(memoryview(seams.reshape(-1)), match_event_handler=record)
        if matches:
            candidates[edges[(np.array(matches, dtype=np.int64)[:, 1] - 1) // seams.shape[1]]] = True
    return candidates, certain


_WORD_BYTES = np.zeros(256, dtype=bool)  # ASCII word characters: what (?-u:\b) and Hyperscan's \b look at
_WORD_BYTES[[ord(c) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"]] = True


def _edge_documents(buffer: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Documents where the buffer hides a word boundary: the first byte is a word byte and so is the byte before it
    (the previous document's), or the same at the last byte. Only there can the buffer scan miss a match."""
    starts, stops = offsets[:-1], offsets[1:]
    filled = stops > starts
    last = len(buffer) - 1
    word = lambda positions: _WORD_BYTES[buffer[np.clip(positions, 0, last)]]  # noqa: E731
    head = filled & (starts > offsets[0]) & word(starts - 1) & word(starts)
    tail = filled & (stops < offsets[-1]) & word(stops - 1) & word(stops)
    return np.flatnonzero(head | tail)


def _seams(buffer: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """One row per document: newline, its first _SEAM_BYTES bytes, newline, its last _SEAM_BYTES bytes, newline
    (short documents padded with newlines), so boundaries at the document's edges read as they do alone."""
    starts, stops = starts[:, None], stops[:, None]
    step = np.arange(_SEAM_BYTES)
    heads, tails = starts + step, stops - _SEAM_BYTES + step
    newline = np.uint8(ord("\n"))
    last = len(buffer) - 1
    head = np.where(heads < stops, buffer[np.minimum(heads, last)], newline)
    tail = np.where(tails >= starts, buffer[np.clip(tails, 0, last)], newline)
    fence = np.full((len(starts), 1), newline, dtype=np.uint8)
    return np.ascontiguousarray(np.hstack([fence, head, fence, tail, fence]))


def _text_array(texts) -> pa.StringArray | pa.LargeStringArray:
    """The texts as one Arrow string array (the scan's batches already are one: no copy then)."""
    if isinstance(texts, pl.Series):
        texts = texts.to_arrow()
    elif not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array(texts, type=pa.large_string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.large_string())
    return texts
