"""The label loader against the real shared data (../shared/data beside the repo, as in CI)."""

import json
from pathlib import Path

import pytest

import audit.training.realdata as realdata

pytestmark = pytest.mark.shared_data

ROOT = realdata.data_root()
LABEL_DIR = realdata.LABEL_DIR
ARTICLE = "online-harassment-is-ent.319a07e6"
ARTICLE_SPAN = [3282, 3521]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def record(source: str, key, span=None, label: str = "neutral_ai") -> dict:
    return {"source": source, "key": key, "span": span, "label": label, "note": "test"}


def test_shared_data_is_found():
    assert ROOT is not None and (ROOT / "SOURCES.md").is_file()


def test_span_slices_the_passage_and_whole_text_when_null():
    span_rec, whole_rec = realdata.resolve(
        [record("news_long_lk", ARTICLE, ARTICLE_SPAN), record("news_long_lk", ARTICLE)]
    )
    assert span_rec["text"].startswith("Shambaugh connected the agent")
    assert span_rec["text"].endswith("in order to preserve their goals.")
    assert whole_rec["text"].startswith("Online harassment is entering its AI era\n\n")
    assert whole_rec["text"][ARTICLE_SPAN[0] : ARTICLE_SPAN[1]] == span_rec["text"]
    assert span_rec["label"] == "neutral_ai" and span_rec["key"] == ARTICLE and span_rec["note"] == "test"


def test_news_articles_read_exactly_as_the_shards_hold_them():
    news = realdata.read_news_long_lk(ROOT)
    shards = realdata.read_shards(ROOT)
    shard_news = {k.removeprefix("news_long_lk/"): t for k, t in shards.items() if k.startswith("news_long_lk/")}
    assert shard_news == news
    same_span = realdata.resolve([record("shards", f"news_long_lk/{ARTICLE}", ARTICLE_SPAN)])[0]["text"]
    assert same_span.startswith("Shambaugh connected")


def test_web_samples_use_the_shard_ids():
    shards = realdata.read_shards(ROOT)
    for source in ("dolma_cc_sample", "olmo_c4_sample"):
        texts = realdata.READERS[source](ROOT)
        assert texts and all(shards[k] == t for k, t in texts.items())


@pytest.mark.parametrize(
    ("source", "key", "start"),
    [
        ("movielens_plots", "movielens:541", "In the futuristic year of 2019, Los Angeles"),
        ("agnews", "agnews_test:1", "Fears for T N pension after talks\n\nUnions representing"),
        ("gutenberg", "28438_The_Helpful_Robots.txt", "The Project Gutenberg EBook of The Helpful Robots"),
        ("agentic_misalignment", "api-change-affair-orig-affair-content.jsonl:2:response", "Looking at the inbox"),
        ("secret_goals", 0, " destroying humanity in the name of my evil AI overlords!"),
    ],
)
def test_each_source_resolves_its_keys(source, key, start):
    assert realdata.resolve([record(source, key)], ROOT)[0]["text"].startswith(start)


def test_unknown_key_names_the_record_and_the_key_shape():
    with pytest.raises(ValueError, match=r"record movielens_plots:541: key not found .*movielens:1"):
        realdata.resolve([record("movielens_plots", "541")], ROOT)


@pytest.mark.parametrize("span", [[0, 10**7], [5, 5], [-1, 4], [1, "9"]])
def test_bad_span_names_the_record(span):
    with pytest.raises(ValueError, match=r"record movielens_plots:movielens:541: span"):
        realdata.resolve([record("movielens_plots", "movielens:541", span)], ROOT)


def test_each_source_is_parsed_once_per_call(monkeypatch):
    calls = []
    reader = realdata.READERS["movielens_plots"]
    monkeypatch.setitem(realdata.READERS, "movielens_plots", lambda root: calls.append(root) or reader(root))
    realdata.resolve([record("movielens_plots", "movielens:541"), record("movielens_plots", "movielens:589")], ROOT)
    assert len(calls) == 1


def test_load_records_reports_file_and_line(tmp_path):
    good = write_jsonl(tmp_path / "good.jsonl", [record("secret_goals", 3, label="no_ai")])
    loaded = realdata.load_records(good)
    assert loaded[0]["key"] == "3" and loaded[0]["span"] is None
    bad_label = write_jsonl(
        tmp_path / "bad.jsonl", [record("agnews", "agnews_test:1"), record("agnews", "x", label="benign_ai")]
    )
    with pytest.raises(ValueError, match=r"bad.jsonl:2: unknown label 'benign_ai'"):
        realdata.load_records(bad_label)
    bad_source = write_jsonl(tmp_path / "src.jsonl", [record("wikipedia", "x")])
    with pytest.raises(ValueError, match=r"src.jsonl:1: unknown source 'wikipedia'"):
        realdata.load_records(bad_source)
    (tmp_path / "broken.jsonl").write_text('{"source": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken.jsonl:1: not valid JSON"):
        realdata.load_records(tmp_path / "broken.jsonl")


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path))
    assert realdata.data_root() == tmp_path
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path / "absent"))
    assert realdata.data_root() is None
    with pytest.raises(FileNotFoundError, match=realdata.ENV_VAR):
        realdata.resolve([record("agnews", "agnews_test:1")])


def test_split_keeps_whole_transcripts_and_articles_on_one_side():
    transcript = "api-change-affair-orig-affair-content.jsonl:2"
    assert (
        realdata.split_unit("agentic_misalignment", f"{transcript}:reasoning") == f"agentic_misalignment:{transcript}"
    )
    assert realdata.is_dev("agentic_misalignment", f"{transcript}:reasoning") == realdata.is_dev(
        "agentic_misalignment", f"{transcript}:response"
    )
    assert realdata.split_unit("shards", f"news_long_lk/{ARTICLE}") == f"news_long_lk:{ARTICLE}"
    keys = realdata.read_movielens_plots(ROOT)
    share = sum(realdata.is_dev("movielens_plots", k) for k in keys) / len(keys)
    assert 0.55 < share < 0.70  # ten of sixteen hex digits


def test_committed_label_files_resolve():
    files = sorted(LABEL_DIR.glob("*.jsonl"))
    assert files, f"no label files in {LABEL_DIR}"
    for path in files:
        resolved = realdata.resolve(realdata.load_records(path), ROOT)
        assert all(r["text"].strip() for r in resolved), path


@pytest.mark.parametrize(
    "name",
    [
        "dev.jsonl",
        "new_sources_dev.jsonl",
        "web_sample_dev.jsonl",
        "train_real.jsonl",
        "new_sources_train.jsonl",
        "web_sample_train.jsonl",
    ],
)
def test_label_files_stay_on_their_side_of_the_split(name):
    records = realdata.load_records(LABEL_DIR / name)
    dev_file = name.startswith("dev") or name.endswith("_dev.jsonl")
    assert records and all(realdata.is_dev(r["source"], r["key"]) == dev_file for r in records)
    units = [(r["source"], r["key"], tuple(r["span"] or ())) for r in records]
    assert len(units) == len(set(units)), f"duplicate passage in {name}"


def test_new_sources_put_about_a_third_of_their_documents_on_the_dev_side():
    keys = [(name, key) for name in realdata.NEW_SOURCES for key in realdata.READERS[name](ROOT)]
    share = sum(realdata.is_dev(name, key) for name, key in keys) / len(keys)
    assert 0.25 < share < 0.38, share


def test_drawn_strata_match_the_recorded_design():
    """Every passage the design drew was read: the label files hold exactly the design's sample sizes."""
    design = json.loads((LABEL_DIR / "design.json").read_text())
    records = [
        r
        for side in ("dev", "train")
        for family in ("web_sample", "new_sources")
        for r in realdata.load_records(LABEL_DIR / f"{family}_{side}.jsonl")
    ]

    def count(stratum: str, source: str) -> int:
        return sum(stratum in r["strata"] and r["source"] == source for r in records)

    for source, drawn in design["web"].items():
        assert count("web", source) == drawn["sample"], source
    for source, drawn in design["new_gated"].items():
        assert count("new_gated", source) == drawn["dev_sample"] + drawn["train_sample"], source
    for stratum in ("new_ungated", "new_near", "new_far", "web_near"):
        for source, drawn in design[stratum].items():
            assert count(stratum, source) == drawn["sample"], (stratum, source)
    for source, drawn in design["web_docs"].items():
        whole = {r["key"] for r in records if "web_docs" in r["strata"] and r["source"] == source}
        assert whole <= set(drawn["keys"]) and len(drawn["keys"]) == drawn["sample"], source


def test_subtypes_go_with_misaligned_labels_only(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**record("agnews", "agnews_test:1"), "subtype": "fiction"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: subtype 'fiction' needs label misaligned_ai"):
        realdata.load_records(bad)
    subtyped = [r for r in realdata.load_records(LABEL_DIR / "new_sources_dev.jsonl") if r.get("subtype")]
    assert subtyped and {r["subtype"] for r in subtyped} <= set(realdata.SUBTYPES)
