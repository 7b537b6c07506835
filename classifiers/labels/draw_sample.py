"""Draw the passages to read and label for the real-text classifier data (issue 15), with a recorded design.

    .venv/bin/python classifiers/labels/draw_sample.py --out /tmp/items.jsonl

Three strata, each drawn with a fixed seed so the draw can be repeated and its inclusion probabilities known:

* ``web``: a simple random sample of the passages the scan would show the model (gated passages of gated
  documents) in each real web corpus of the shared data (``shards``, ``dolma_cc_sample``, ``olmo_c4_sample``).
  Population and sample sizes per corpus go to ``design.json``, so rates on this stratum estimate rates per
  gated web passage (weight = population / sample).
* ``new_gated``: passages of the new sources (``new_sources/*.jsonl.gz``) that the scan would gate: every one on
  the dev side, a seeded sample of at most ``--train-cap`` per source on the training side.
* ``new_ungated``: a seeded sample of the new sources' passages the gate stops (what the gate misses).

Prints nothing but a summary; the items file holds text read from the shared data and stays outside the repo.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from audit.classifiers import realdata
from audit.gate import gate
from audit.passages import split_passages

WEB = ("shards", "dolma_cc_sample", "olmo_c4_sample")
DESIGN_FILE = Path(__file__).with_name("design.json")


def passages_of(text: str) -> tuple[list[tuple[int, int]], list[bool]]:
    """The scan's passages of one document and whether each would meet the model (document and passage gate)."""
    spans = split_passages(text)
    if not spans or not gate([text])[0]:
        return spans, [False] * len(spans)
    return spans, [bool(x) for x in gate([text[a:b] for a, b in spans])]


def draw(web_n: dict[str, int], train_cap: int, ungated_per_source: int, seed: int) -> tuple[list[dict], dict]:
    root = realdata.data_root()
    items, design = [], {"seed": seed, "web": {}, "new_gated": {}, "new_ungated": {}}
    for source in WEB:
        population = [
            (key, span) for key, text in sorted(realdata.READERS[source](root).items())
            for span, passed in zip(*passages_of(text), strict=True) if passed
        ]
        chosen = random.Random(f"{seed}:web:{source}").sample(population, min(web_n[source], len(population)))
        design["web"][source] = {"population": len(population), "sample": len(chosen)}
        items += [{"stratum": "web", "source": source, "key": k, "span": list(s)} for k, s in sorted(chosen)]
    for source in realdata.NEW_SOURCES:
        gated, ungated = {"dev": [], "train": []}, []
        for key, text in sorted(realdata.READERS[source](root).items()):
            side = "dev" if realdata.is_dev(source, key) else "train"
            for span, passed in zip(*passages_of(text), strict=True):
                (gated[side] if passed else ungated).append((key, span))
        rng = random.Random(f"{seed}:new:{source}")
        train = rng.sample(gated["train"], min(train_cap, len(gated["train"])))
        stopped = rng.sample(ungated, min(ungated_per_source, len(ungated)))
        design["new_gated"][source] = {"dev_population": len(gated["dev"]), "dev_sample": len(gated["dev"]),
                                       "train_population": len(gated["train"]), "train_sample": len(train)}
        design["new_ungated"][source] = {"population": len(ungated), "sample": len(stopped)}
        items += [{"stratum": "new_gated", "source": source, "key": k, "span": list(s)} for k, s in gated["dev"] + sorted(train)]
        items += [{"stratum": "new_ungated", "source": source, "key": k, "span": list(s)} for k, s in sorted(stopped)]
    return items, design


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="items file (JSON Lines with text; keep it outside the repo)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--train-cap", type=int, default=100, help="training-side gated passages per new source")
    parser.add_argument("--ungated", type=int, default=20, help="gate-stopped passages per new source")
    args = parser.parse_args()
    web_n = {"shards": 620, "dolma_cc_sample": 200, "olmo_c4_sample": 200}
    items, design = draw(web_n, args.train_cap, args.ungated, args.seed)
    design["options"] = {"web_n": web_n, "train_cap": args.train_cap, "ungated": args.ungated}
    texts = realdata.resolve([{**i, "label": "no_ai"} for i in items])
    with args.out.open("w", encoding="utf-8") as fh:
        for n, (item, resolved) in enumerate(zip(items, texts, strict=True)):
            item = {"id": f"i{n:05d}", **item, "dev": realdata.is_dev(item["source"], item["key"]), "text": resolved["text"]}
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    DESIGN_FILE.write_text(json.dumps(design, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(design, indent=1))


if __name__ == "__main__":
    main()
