"""Split a document into passages: paragraph-aware, sentence-bounded, about 40 to 250 words.

Each passage is a ``(char_start, char_end)`` pair of code-point offsets, so ``text[char_start:char_end]`` is the
passage, exactly as it stands in the document. Short paragraphs are joined until a passage has ``min_words``;
a paragraph longer than ``max_words`` is cut at sentence boundaries, and a sentence longer than that at words.

Sentence boundaries come from a regular expression that follows spaCy's rule-based ``sentencizer`` (a break
after ``.``, ``!``, ``?`` or ``…`` plus closing quotes/brackets, before the next word) and, like spaCy's
tokenizer exceptions, does not break after common abbreviations. ``tests/test_passages.py`` checks its
agreement with ``spacy.blank("en")`` + ``sentencizer`` on real text; it is ~100x faster, which matters because
it runs on every gated document.
"""

from __future__ import annotations

import re

MIN_WORDS = 40
MAX_WORDS = 250

_PARAGRAPH = re.compile(r"[^\n]*\S[^\n]*")
_WORD = re.compile(r"\S+")
_ABBREVIATIONS = (
    "mr|mrs|ms|dr|prof|sr|jr|st|mt|ft|vs|etc|e\\.g|i\\.e|u\\.s|u\\.k|inc|ltd|co|corp|no|nos|gen|sen|rep|gov|"
    "lt|col|capt|sgt|rev|fig|figs|vol|pp|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|approx|dept|est|"
    "a\\.m|p\\.m"
)
# A boundary: end punctuation and closing quotes, then whitespace, then something that can start a sentence.
_BOUNDARY = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9])")
_ABBREV_BEFORE = re.compile(rf"(?:^|[\s(\"'“‘])(?:{_ABBREVIATIONS}|(?:[A-Za-z]\.)*[A-Za-z])$", re.IGNORECASE)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans of ``text[start:end]``, whitespace trimmed.

    >>> s = "Dr. Who came. He left!  Then?"
    >>> [s[a:b] for a, b in sentence_spans(s)]
    ['Dr. Who came.', 'He left!', 'Then?']
    """
    end = len(text) if end is None else end
    spans, begin = [], start
    for match in _BOUNDARY.finditer(text, start, end):
        word_before = text[max(begin, match.start() - 12) : match.start()]
        if match.group(0)[0] == "." and _ABBREV_BEFORE.search(word_before):
            continue
        spans.append((begin, match.end()))
        begin = match.end()
    spans.append((begin, end))
    return [trimmed for a, b in spans if (trimmed := _trim(text, a, b))]


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _word_count(text: str, start: int, end: int) -> int:
    return sum(1 for _ in _WORD.finditer(text, start, end))


def _pieces(text: str, max_words: int) -> list[tuple[int, int, int]]:
    """(start, end, words) units no longer than ``max_words``: paragraphs, or sentences/word runs of long ones."""
    pieces = []
    for paragraph in _PARAGRAPH.finditer(text):
        start, end = _trim(text, paragraph.start(), paragraph.end()) or (0, 0)
        if start == end:
            continue
        words = _word_count(text, start, end)
        if words <= max_words:
            pieces.append((start, end, words))
            continue
        for a, b in sentence_spans(text, start, end):
            n = _word_count(text, a, b)
            if n <= max_words:
                pieces.append((a, b, n))
            else:
                pieces.extend(_word_runs(text, a, b, max_words))
    return pieces


def _word_runs(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int, int]]:
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [
        (words[i][0], words[min(i + max_words, len(words)) - 1][1], min(max_words, len(words) - i))
        for i in range(0, len(words), max_words)
    ]


def split_passages(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Passages of a document as ``(char_start, char_end)`` offsets.

    >>> doc = "Title\\n\\n" + "word " * 60 + "\\n" + "A robot spoke."
    >>> [len(doc[a:b].split()) for a, b in split_passages(doc)]
    [64]
    """
    passages: list[list[int]] = []  # [start, end, words]
    for start, end, words in _pieces(text, max_words):
        last = passages[-1] if passages else None
        if last and last[2] < min_words and last[2] + words <= max_words:
            last[1], last[2] = end, last[2] + words
        else:
            passages.append([start, end, words])
    _join_short(passages, min_words, max_words)
    return [(start, end) for start, end, _ in passages]


def _join_short(passages: list[list[int]], min_words: int, max_words: int) -> None:
    """Join each passage still under ``min_words`` to its shorter neighbour, when that stays within ``max_words``."""
    i = 0
    while i < len(passages):
        words = passages[i][2]
        fits = [j for j in (i - 1, i + 1) if 0 <= j < len(passages) and passages[j][2] + words <= max_words]
        if words >= min_words or not fits:
            i += 1
            continue
        first, second = sorted((i, min(fits, key=lambda j: passages[j][2])))
        passages[first] = [passages[first][0], passages[second][1], passages[first][2] + passages[second][2]]
        del passages[second]
        i = first
