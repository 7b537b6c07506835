"""MinHash signatures: same shingles as promised, and exactly datasketch's values, whatever the batching."""

import numpy as np
import pytest
import xxhash
from datasketch import MinHash
from datasketch.hashfunc import sha1_hash32

from audit.minhash import normalise, shingles, signatures

# Made-up sentences, written for these tests.
TEXTS = [
    "The maintenance drone kept the lights on after everyone had left the station.",
    "THE maintenance drone -- kept the lights on, after everyone had left the station!!",
    "Short one.",
    "",
    "Überall im Netz: the café's robot barista wrote “a poem” about espresso and quiet mornings.",
    "one two three four five",
    "one two three four five six",
]


def datasketch_signature(text: str, hashfunc) -> np.ndarray:
    sketch = MinHash(num_perm=128, seed=1, hashfunc=hashfunc)
    sketch.update_batch([s.encode("utf-8") for s in shingles(text)])
    return sketch.hashvalues


def test_normalise_drops_case_punctuation_and_extra_space():
    assert normalise(TEXTS[0]) == normalise(TEXTS[1])
    assert normalise("  Hello,\tWORLD!\n") == "hello world"
    assert normalise("well-known") == "well known"


def test_shingles_are_word_three_grams_and_short_texts_give_one():
    assert shingles("one two three four") == ["one two three", "two three four"]
    assert shingles("Just three words.") == ["just three words"]
    assert shingles("Two words") == ["two words"]
    assert shingles("") == [""]
    assert shingles("a b c d", n=2) == ["a b", "b c", "c d"]


@pytest.mark.parametrize("hashfunc", [xxhash.xxh32_intdigest, sha1_hash32])
def test_signatures_equal_datasketch(hashfunc):
    ours = signatures(TEXTS, hashfunc=hashfunc)
    assert ours.shape == (len(TEXTS), 128)
    assert ours.dtype == np.uint32
    for row, text in zip(ours, TEXTS, strict=True):
        np.testing.assert_array_equal(row, datasketch_signature(text, hashfunc))
    np.testing.assert_array_equal(ours[0], ours[1])
    assert not np.array_equal(ours[0], ours[2])


def test_signatures_do_not_depend_on_batching():
    rng = np.random.default_rng(3)
    vocabulary = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choice(vocabulary, size=int(rng.integers(1, 400)))) for _ in range(300)]
    together = signatures(texts)  # about 60,000 shingles: several internal chunks
    halves = np.concatenate([signatures(texts[:137]), signatures(texts[137:])])
    np.testing.assert_array_equal(together, halves)
    for i in (0, 136, 137, 299):
        np.testing.assert_array_equal(together[i], datasketch_signature(texts[i], xxhash.xxh32_intdigest))


def test_other_sizes_and_seeds_follow_datasketch():
    ours = signatures(TEXTS[:2], num_perm=64, seed=42)
    sketch = MinHash(num_perm=64, seed=42, hashfunc=xxhash.xxh32_intdigest)
    sketch.update_batch([s.encode("utf-8") for s in shingles(TEXTS[0])])
    np.testing.assert_array_equal(ours[0], sketch.hashvalues)


def test_empty_batch():
    assert signatures([]).shape == (0, 128)
