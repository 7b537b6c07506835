"""Clustering a million MinHash signatures: time and peak memory of `audit.clusters.cluster_ids`.

Synthetic signatures with a realistic family structure: most passages are unique, a share of them belong to
families of near-copies (a few signature values changed, estimated Jaccard 0.75-1.0 to the family's original;
sizes from a heavy-tailed distribution, the largest a thousand) and some are loose relatives of a
family's original (Jaccard about 0.55, which LSH may bucket but verification must reject).

Figures are given against two baselines measured in the same run on the same machine:
  * sorting the signature array column by column (`np.sort(axis=0)`), the cost of touching every value;
  * datasketch `MinHashLSH` (insert + query of every signature) on a subset, extrapolated linearly.

    .venv/bin/python benchmarks/bench_clusters.py [--n 1000000] [--subset 50000] [--out benchmarks/clusters.md]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np
from datasketch import MinHash, MinHashLSH

from audit.clusters import THRESHOLD, cluster_ids
from audit.minhash import NUM_PERM, SEED


def synthetic_signatures(n: int, family_share: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(signatures, number of rows planted in families). Families sit in consecutive rows; the benchmark's
    random keys scatter them in the canonical order (shuffling the rows instead would double peak memory)."""
    signatures = rng.integers(0, 2**32, size=(n, NUM_PERM), dtype=np.uint32)
    planted = int(n * family_share)
    sizes = np.minimum(rng.zipf(1.8, size=planted) + 1, 1000)
    sizes = sizes[np.cumsum(sizes) <= planted]
    row = 0
    for size in sizes:
        original = signatures[row]
        copies = np.repeat(original[None, :], size - 1, axis=0)
        changed = rng.random(copies.shape) < rng.uniform(0.0, 0.15, size=(size - 1, 1))
        copies[changed] = rng.integers(0, 2**32, size=int(changed.sum()), dtype=np.uint32)
        signatures[row + 1: row + size] = copies
        row += size
    relatives = rng.choice(np.arange(row), size=min(row, n - row) // 10, replace=False)
    loose = signatures[relatives].copy()
    changed = rng.random(loose.shape) < 0.45
    loose[changed] = rng.integers(0, 2**32, size=int(changed.sum()), dtype=np.uint32)
    signatures[row: row + len(loose)] = loose
    return signatures, row


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def datasketch_seconds(signatures: np.ndarray, threshold: float) -> float:
    """Time for datasketch MinHashLSH to insert every signature and query each one back."""
    permutations = MinHash(num_perm=NUM_PERM, seed=SEED).permutations
    sketches = [MinHash(seed=SEED, hashvalues=row, permutations=permutations, scheme="affine32")
                for row in signatures]
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    for i, sketch in enumerate(sketches):
        lsh.insert(i, sketch)
    for sketch in sketches:
        lsh.query(sketch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=50_000)
    parser.add_argument("--family-share", type=float, default=0.05)
    parser.add_argument("--out", default=None, help="write the figures as Markdown to this file")
    args = parser.parse_args()

    rng = np.random.default_rng(7)
    signatures, planted = synthetic_signatures(args.n, args.family_share, rng)
    keys = rng.permutation(args.n)
    rss_before = rss_mib()

    start = time.perf_counter()
    ids = cluster_ids(signatures, keys, threshold=THRESHOLD)
    cluster_seconds = time.perf_counter() - start
    rss_peak = rss_mib()

    _, sizes = np.unique(ids, return_counts=True)
    in_families = int(sizes[sizes >= 2].sum())

    start = time.perf_counter()
    np.sort(signatures, axis=0)
    sort_seconds = time.perf_counter() - start
    subset_seconds = datasketch_seconds(signatures[: args.subset], THRESHOLD)
    datasketch_extrapolated = subset_seconds * args.n / args.subset

    lines = [
        "## Near-duplicate clustering (`audit.clusters.cluster_ids`)",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_clusters.py --n {args.n} --subset {args.subset}"
        f" --family-share {args.family_share}`",
        f"Machine: {platform.processor() or platform.machine()}, numpy {np.__version__}, one process "
        "(cluster_ids is single-threaded numpy).",
        "",
        f"Input: {args.n:,} signatures x {NUM_PERM} uint32 ({signatures.nbytes / 2**20:,.0f} MiB), "
        f"{planted:,} planted in near-copy families, threshold {THRESHOLD}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| cluster_ids wall time | {cluster_seconds:.1f} s |",
        f"| baseline: np.sort(signatures, axis=0) | {sort_seconds:.1f} s (cluster_ids = {cluster_seconds / sort_seconds:.2f}x) |",
        f"| baseline: datasketch MinHashLSH insert+query, {args.subset:,} extrapolated to {args.n:,} | "
        f"{datasketch_extrapolated:.1f} s (cluster_ids is {datasketch_extrapolated / cluster_seconds:.1f}x faster) |",
        f"| peak RSS before clustering (signatures generated) | {rss_before:,.0f} MiB |",
        f"| peak RSS during clustering | {rss_peak:,.0f} MiB (+{rss_peak - rss_before:,.0f} MiB, "
        f"{rss_peak / rss_before:.2f}x the input's process) |",
        f"| passages found in families of 2+ | {in_families:,} (planted {planted:,}) |",
        f"| families of 2+ | {int((sizes >= 2).sum()):,}; largest {int(sizes.max()):,} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
