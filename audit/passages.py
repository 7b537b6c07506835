"""Split a document into passages: paragraph-aware, sentence-bounded, at least 40 and at most 250 words.

Each passage is a ``(char_start, char_end)`` pair of code-point offsets, so ``text[char_start:char_end]`` is the
passage, exactly as it stands in the document. The units are paragraphs, and the sentences of a paragraph longer
than ``max_words`` (a sentence longer than that is cut at words). A passage ends after a unit whose end is the
strongest within ``min_words`` words either side: a paragraph end beats a sentence end, and between two of a kind
a hash of their last two words decides (a local-maximum rule of content-defined chunking). Whether a place is a
cut depends only on the text around it, not on where the previous passage began, so the same text splits the
same way in every copy: with a few words changed, or set among other paragraphs (then only the passages
touching its first and last paragraph can differ). Near-duplicate families depend on that (issue 17).

Sentence boundaries come from a regular expression that follows spaCy's rule-based ``sentencizer`` (a break
after ``.``, ``!``, ``?`` or ``…`` plus closing quotes/brackets, before the next word) and, like spaCy's
tokenizer exceptions, does not break after common abbreviations. ``tests/test_passages.py`` checks its
agreement with ``spacy.blank("en")`` + ``sentencizer`` on real text; it is ~100x faster, which matters because
it runs on every gated document.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import xxhash

MIN_WORDS = 40
MAX_WORDS = 250

_PARAGRAPH = re.compile(r"[^\n]*\S[^\n]*")
_WORD = re.compile(r"\S+")
_LAST_WORDS = re.compile(r"\w+")
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


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a run of ``max_words`` words of a longer one), and how strongly its end may end a passage."""
    start: int
    end: int
    words: int
    strength: tuple[int, int]  # (2 paragraph end, 1 sentence end, 0 run of words; hash of its last words)


def _units(text: str, max_words: int) -> list[_Unit]:
    """Paragraphs, and the sentences of a paragraph longer than ``max_words``."""
    units = []
    for paragraph in _PARAGRAPH.finditer(text):
        start, end = _trim(text, paragraph.start(), paragraph.end()) or (0, 0)
        words = len(text[start:end].split())
        if words <= max_words:
            units.append(_Unit(start, end, words, (2, _tail_hash(text[max(start, end - 60):end]))))
            continue
        sentences = sentence_spans(text, start, end)
        for a, b in sentences:
            words = len(text[a:b].split())
            runs = [(a, b, words)] if words <= max_words else _word_runs(text, a, b, max_words)
            for x, y, n in runs:
                level = 2 if y == sentences[-1][1] else 1 if y == b else 0
                units.append(_Unit(x, y, n, (level, _tail_hash(text[max(x, y - 60):y]))))
    return units


def _tail_hash(tail: str) -> int:
    """A hash of the last two words: it reads nothing else, so edits elsewhere in the sentence leave it be."""
    return xxhash.xxh32_intdigest(" ".join(_LAST_WORDS.findall(tail.lower())[-2:]).encode("utf-8"))


def _word_runs(text: str, start: int, end: int, max_words: int) -> list[tuple[int, int, int]]:
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, start, end)]
    return [
        (words[i][0], words[min(i + max_words, len(words)) - 1][1], min(max_words, len(words) - i))
        for i in range(0, len(words), max_words)
    ]


def split_passages(text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Passages of a document as ``(char_start, char_end)`` offsets.

    Passages end where the text is strongest within ``min_words`` either side (`_cuts`): a paragraph end over a
    sentence end, and between two of a kind the one whose last words hash higher. That choice reads only the
    text around the cut, so a copy with a few words changed, or set among other paragraphs, is cut at the same
    places, and a passage holds ``min_words`` or more. One longer than ``max_words`` is cut again inside.

    >>> doc = "Title\\n\\n" + "word " * 60 + "\\n" + "A robot spoke."
    >>> [len(doc[a:b].split()) for a, b in split_passages(doc)]
    [64]
    """
    units = _units(text, max_words)
    if not units:
        return []
    ends = [0, *_cuts(units, min_words), len(units)]
    passages = [span for a, b in itertools.pairwise(ends) for span in _within_max(units[a:b], min_words, max_words)]
    _join_short(passages, min_words, max_words)
    return [(start, end) for start, end, _ in passages]


def _cuts(units: list[_Unit], min_words: int) -> list[int]:
    """Indices i where a passage ends before unit i: the unit ends that are stronger than every other unit end
    (and than the document's start and end) less than ``min_words`` words away; ties go to the earlier end."""
    position = list(itertools.accumulate(unit.words for unit in units))
    total = position[-1] if position else 0
    keys = [(unit.strength, -i) for i, unit in enumerate(units)]
    cuts = []
    for i in range(len(units) - 1):
        if position[i] < min_words or total - position[i] < min_words:
            continue
        j = i - 1
        while j >= 0 and position[i] - position[j] < min_words and keys[j] < keys[i]:
            j -= 1
        k = i + 1
        while k < len(units) - 1 and position[k] - position[i] < min_words and keys[k] < keys[i]:
            k += 1
        if (j < 0 or position[i] - position[j] >= min_words) and (
                k >= len(units) - 1 or position[k] - position[i] >= min_words):
            cuts.append(i + 1)
    return cuts


def _within_max(units: list[_Unit], min_words: int, max_words: int) -> list[list[int]]:
    """[start, end, words] of a run of units, cut again at its strongest unit end (leaving ``min_words`` either
    side when it can) while longer than ``max_words``."""
    done, todo = [], [units]  # a stack, not recursion: a long run of one-word units would cut thousands deep
    while todo:
        run = todo.pop()
        words = sum(unit.words for unit in run)
        if words <= max_words:
            done.append([run[0].start, run[-1].end, words])
            continue
        before = list(itertools.accumulate(unit.words for unit in run))[:-1]
        roomy = [i for i, n in enumerate(before) if n >= min_words and words - n >= min_words] or range(len(before))
        best = max(roomy, key=lambda i: (run[i].strength, -i)) + 1
        todo += [run[best:], run[:best]]  # the first half is cut (or kept) first
    return done


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
