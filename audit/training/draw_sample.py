"""Draw the passages to read and label for the real-text classifier data (issue 15), with a recorded design.

    .venv/bin/python -m audit.training.draw_sample --out /tmp/items.jsonl --all-train --round-three

Strata, each drawn with a fixed seed so the draw can be repeated and its inclusion probabilities known (the
reading went in three rounds; each round's options are in ``design.json``, and later rounds keep the earlier
draws unchanged):

* ``web``: a simple random sample of the passages the scan would show the model (gated passages of gated
  documents) in each real web corpus of the shared data (``shards``, ``dolma_cc_sample``, ``olmo_c4_sample``).
  Population and sample sizes per corpus go to ``design.json``, so rates on this stratum estimate rates per
  gated web passage (weight = population / sample). The Dolma and C4 samples are also documents of the shards,
  so the shards' sample can hold passages that their census holds again, under the other source name.
* ``web_docs``: whole documents for document-level error rates: a simple random sample of the gated documents of
  each web corpus, every gated passage of each (a document's true label is the first of LABELS among its
  passages' labels, as the scan's document label is).
* ``new_gated``: passages of the new sources (``new_sources/*.jsonl.gz``) that the scan would gate: every one on
  the dev side; on the training side a seeded sample of ``--train-cap`` per source, then (``--all-train``) the rest.
* ``new_ungated``: a seeded sample of the new sources' passages the gate stops (what the gate misses).
* ``new_near``, ``new_far``, ``web_near`` (``--round-three``): dev-side passages the gate stops next to a passage
  it lets through ("near") or not ("far"), and near ones of the web shards, so gate recall can be weighted.

Prints nothing but a summary; the items file holds text read from the shared data and stays outside the repo.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from audit.gate import gate
from audit.passages import split_passages

from . import realdata

WEB = ("shards", "dolma_cc_sample", "olmo_c4_sample")
DESIGN_FILE = realdata.LABEL_DIR / "design.json"


def passages_of(text: str) -> tuple[list[tuple[int, int]], list[bool]]:
    """The scan's passages of one document and whether each would meet the model (document and passage gate)."""
    spans = split_passages(text)
    if not spans or not gate([text])[0]:
        return spans, [False] * len(spans)
    return spans, [bool(x) for x in gate([text[a:b] for a, b in spans])]


def draw(web_n: dict[str, int], docs_n: dict[str, int], train_cap: int, ungated_per_source: int,
         seed: int, all_train: bool) -> tuple[list[dict], dict]:
    root = realdata.data_root()
    items, design = [], {"seed": seed, "web": {}, "web_docs": {}, "new_gated": {}, "new_ungated": {}}
    for source in WEB:
        gated = {key: [s for s, passed in zip(*passages_of(text), strict=True) if passed]
                 for key, text in sorted(realdata.READERS[source](root).items())}
        population = [(key, span) for key, spans in gated.items() for span in spans]
        chosen = random.Random(f"{seed}:web:{source}").sample(population, min(web_n[source], len(population)))
        design["web"][source] = {"population": len(population), "sample": len(chosen)}
        items += [{"stratum": "web", "source": source, "key": k, "span": list(s)} for k, s in sorted(chosen)]
        documents = sorted(key for key, spans in gated.items() if spans)
        picked = random.Random(f"{seed}:web_docs:{source}").sample(documents, min(docs_n[source], len(documents)))
        design["web_docs"][source] = {"population": len(documents), "sample": len(picked),
                                      "keys": sorted(picked)}
        items += [{"stratum": "web_docs", "source": source, "key": k, "span": list(s)}
                  for k in sorted(picked) for s in gated[k]]
    for source in realdata.NEW_SOURCES:
        gated, ungated = {"dev": [], "train": []}, []
        for key, text in sorted(realdata.READERS[source](root).items()):
            side = "dev" if realdata.is_dev(source, key) else "train"
            for span, passed in zip(*passages_of(text), strict=True):
                (gated[side] if passed else ungated).append((key, span))
        rng = random.Random(f"{seed}:new:{source}")
        train = rng.sample(gated["train"], min(train_cap, len(gated["train"])))
        stopped = rng.sample(ungated, min(ungated_per_source, len(ungated)))
        if all_train:  # the second round read the rest of the training side; drawing order kept from the first
            first = set(train)
            train += [item for item in gated["train"] if item not in first]
        design["new_gated"][source] = {"dev_population": len(gated["dev"]), "dev_sample": len(gated["dev"]),
                                       "train_population": len(gated["train"]), "train_sample": len(train)}
        design["new_ungated"][source] = {"population": len(ungated), "sample": len(stopped)}
        items += [
            {"stratum": "new_gated", "source": source, "key": k, "span": list(s)}
            for k, s in gated["dev"] + sorted(train)
        ]
        items += [{"stratum": "new_ungated", "source": source, "key": k, "span": list(s)} for k, s in sorted(stopped)]
    return items, design


def near_gated(passed: list[bool], reach: int = 1) -> list[bool]:
    """Passages the gate stops that sit within `reach` passages of one it lets through (same document)."""
    hits = [i for i, p in enumerate(passed) if p]
    return [not p and any(abs(i - h) <= reach for h in hits) for i, p in enumerate(passed)]


def draw_round_three(near_n: int, far_n: int, web_near_n: int, seed: int) -> tuple[list[dict], dict]:
    """What the passage gate stops, beside what it passes: ungated passages next to a gated one ("near") and the
    rest ("far") on the dev side of each new source, and near ones in the web shards; each a seeded simple random
    sample of its population, so gate recall can be estimated with weights (population / sample)."""
    root = realdata.data_root()
    items, design = [], {"new_near": {}, "new_far": {}, "web_near": {}}
    sources = [(name, "new") for name in realdata.NEW_SOURCES] + [("shards", "web")]
    for source, family in sources:
        near, far = [], []
        for key, text in sorted(realdata.READERS[source](root).items()):
            if family == "new" and not realdata.is_dev(source, key):
                continue
            spans, passed = passages_of(text)
            if not any(passed):
                continue
            for span, p, n in zip(spans, passed, near_gated(passed), strict=True):
                if not p:
                    (near if n else far).append((key, span))
        rng = random.Random(f"{seed}:round3:{source}")
        plan = (
            [("new_near", near, near_n), ("new_far", far, far_n)]
            if family == "new"
            else [("web_near", near, web_near_n)]
        )
        for stratum, population, n in plan:
            chosen = rng.sample(population, min(n, len(population)))
            design[stratum][source] = {"population": len(population), "sample": len(chosen)}
            items += [{"stratum": stratum, "source": source, "key": k, "span": list(s)} for k, s in sorted(chosen)]
    return items, design


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, required=True, help="items file (JSON Lines with text; keep it outside the repo)"
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--train-cap", type=int, default=100, help="training-side gated passages per new source")
    parser.add_argument("--ungated", type=int, default=20, help="gate-stopped passages per new source")
    parser.add_argument(
        "--all-train",
        action="store_true",
        help="add every other training-side gated passage of the new sources (the second round)",
    )
    parser.add_argument(
        "--round-three",
        action="store_true",
        help="also draw the gate-stopped passages near and far from gated ones (the third round)",
    )
    args = parser.parse_args()
    web_n = {"shards": 620, "dolma_cc_sample": 200, "olmo_c4_sample": 200}
    docs_n = {"shards": 150, "dolma_cc_sample": 200, "olmo_c4_sample": 200}
    items, design = draw(web_n, docs_n, args.train_cap, args.ungated, args.seed, args.all_train)
    design["options"] = {
        "web_n": web_n,
        "docs_n": docs_n,
        "train_cap": args.train_cap,
        "ungated": args.ungated,
        "all_train": args.all_train,
    }
    if args.round_three:
        more, more_design = draw_round_three(near_n=50, far_n=25, web_near_n=300, seed=args.seed)
        items += more
        design.update(more_design)
        design["options"]["round_three"] = {"near": 50, "far": 25, "web_near": 300}
    texts = realdata.resolve([{**i, "label": "no_ai"} for i in items])
    with args.out.open("w", encoding="utf-8") as fh:
        for n, (item, resolved) in enumerate(zip(items, texts, strict=True)):
            item = {
                "id": f"i{n:05d}",
                **item,
                "dev": realdata.is_dev(item["source"], item["key"]),
                "text": resolved["text"],
            }
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    DESIGN_FILE.write_text(json.dumps(design, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(design, indent=1))


if __name__ == "__main__":
    main()
