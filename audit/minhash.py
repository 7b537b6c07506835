"""MinHash signatures of passages, numpy-vectorised, equal to datasketch's.

A passage is normalised (lowercase, punctuation removed, whitespace collapsed), cut into word 3-gram
shingles, and each shingle (UTF-8 bytes) is hashed to 32 bits. Three words, not five: a word dropped or changed
spoils n shingles, so a 70-word passage with three words changed keeps a Jaccard of 0.63 to its original with
5-grams, below the 0.7 threshold, and 0.77 with 3-grams (``audit/planted_families.py`` measures copies of real
text). The signature is exactly what

    datasketch.MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest).update_batch(shingles)

gives (datasketch >= 2.0, default ``"affine32"`` permutation scheme): hash values fit in 32 bits, so signatures are
``uint32``, which halves memory against the ``uint64`` of the old ``"legacy"`` scheme. We use xxh32 instead of
datasketch's default ``sha1_hash32`` because hashing dominates the cost and xxh32 is about five times faster; pass
``hashfunc=datasketch.hashfunc.sha1_hash32`` to get datasketch's default signatures instead.

The speed comes from doing the per-permutation arithmetic once for a whole batch of passages: all shingle hashes
of the batch go into one array, are permuted with a (num_perm x shingles) outer product and reduced per passage
with ``np.minimum.reduceat``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import xxhash

SHINGLE_WORDS = 3
NUM_PERM = 128
SEED = 1

_WORD = re.compile(r"\w+")
# Shingle hashes permuted per chunk: 16k hashes x 128 permutations x 4 bytes = 8 MiB of scratch, which stays
# in cache; the (num_perm, hashes) layout makes the per-passage minimum a contiguous reduction (8x faster).
_CHUNK_HASHES = 1 << 14


def normalise(text: str) -> str:
    """Lowercase, drop punctuation and collapse whitespace, so copies that differ only in those still match.

    Punctuation becomes a word break ("well-known" -> "well known").

    Example:
        >>> normalise("  The AI -- it said: 'No!'\\n\\nShut   down? ")
        'the ai it said no shut down'
    """
    return " ".join(_words(text))


def shingles(text: str, n: int = SHINGLE_WORDS) -> list[str]:
    """Word n-grams of the normalised text; a text shorter than n words gives one shingle of all its words.

    Example:
        >>> shingles("The robot refused. It would not stop!", n=5)
        ['the robot refused it would', 'robot refused it would not', 'refused it would not stop']
        >>> shingles("Rogue AI")
        ['rogue ai']
    """
    return _shingles(_words(text), n)


def signatures(
    texts: Sequence[str],
    num_perm: int = NUM_PERM,
    seed: int = SEED,
    hashfunc: Callable[[bytes], int] = xxhash.xxh32_intdigest,
) -> np.ndarray:
    """MinHash signatures of many texts at once: an (len(texts), num_perm) uint32 array.

    Row i equals ``MinHash(num_perm, seed, hashfunc=hashfunc)`` updated with ``shingles(texts[i])`` encoded as
    UTF-8; ``MinHash.jaccard`` of two such sketches is ``(sig[i] == sig[j]).mean()``.

    Example:
        >>> from datasketch import MinHash
        >>> sig = signatures(["The machine decided to hide its plans from the engineers."])
        >>> m = MinHash(num_perm=128, seed=1, hashfunc=xxhash.xxh32_intdigest)
        >>> text = "The machine decided to hide its plans from the engineers."
        >>> m.update_batch(s.encode("utf-8") for s in shingles(text))
        >>> bool((sig[0] == m.hashvalues).all())
        True
    """
    a, b = _permutations(num_perm, seed)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    start = 0
    while start < len(texts):
        hashes: list[int] = []
        counts: list[int] = []
        stop = start
        while stop < len(texts) and (stop == start or len(hashes) < _CHUNK_HASHES):
            shingle_hashes = [hashfunc(s.encode("utf-8")) for s in shingles(texts[stop])]
            hashes.extend(shingle_hashes)
            counts.append(len(shingle_hashes))
            stop += 1
        hv = _fmix32(np.array(hashes, dtype=np.uint32))
        permuted = np.multiply.outer(a, hv)
        permuted += b[:, None]
        offsets = np.concatenate(([0], np.cumsum(counts[:-1]))).astype(np.intp)
        out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=1).T
        start = stop
    return out


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _shingles(words: list[str], n: int) -> list[str]:
    if len(words) < n:
        return [" ".join(words)]
    return list(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))


def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (odd ``a``, any ``b``), drawn as ``MinHash`` draws them.

    Drawn here with numpy rather than read off a ``MinHash`` so that scan workers need not import datasketch
    (and scipy with it); ``tests/test_minhash.py`` checks the signatures still equal datasketch's.
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """The MurmurHash3 32-bit finalizer datasketch applies to every input hash before permuting it."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))
