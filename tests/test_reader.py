"""Finding shards, planning units of work, reading columns."""

from __future__ import annotations

from itertools import pairwise

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import SHARDS, write_shard

from audit.config import Columns, resolve_columns as preset_columns
from audit.errors import InputError, UsageError
from audit.reader import discover, iter_batches, open_parquet, plan_units, resolve_columns


def test_discover_directories_recursively_globs_and_files(tmp_path):
    a = write_shard(tmp_path / "corpus" / "a.parquet", ["x"])
    b = write_shard(tmp_path / "corpus" / "sub" / "b.parquet", ["y"])
    (tmp_path / "corpus" / "notes.txt").write_text("not a shard")
    found = discover([str(tmp_path / "corpus")])
    assert [s.relpath for s in found] == ["a.parquet", "sub/b.parquet"]
    assert [s.relpath for s in discover([str(tmp_path / "corpus" / "**" / "*.parquet")])] == [
        "a.parquet",
        "sub/b.parquet",
    ]
    assert [s.uri for s in discover([str(b)])] == [str(b)]
    assert found[0].fingerprint() == {"path": str(a), "size": a.stat().st_size, "mtime_ns": a.stat().st_mtime_ns}


def test_discover_names_what_is_missing(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        discover([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no shards found there \(\*\.parquet, \*\.jsonl"):
        discover([str(tmp_path / "empty")])


def test_units_cover_every_row_group_once(tmp_path):
    path = write_shard(tmp_path / "big.parquet", [f"doc {i} " * 50 for i in range(1000)], row_group_size=100)
    shard = discover([str(path)])[0]
    metadata = pq.ParquetFile(path).metadata
    units = plan_units(shard, metadata, unit_bytes=30_000)
    assert len(units) > 2
    assert units[0].start == 0 and units[-1].stop == metadata.num_row_groups
    assert all(u.stop == v.start for u, v in pairwise(units))
    assert sum(u.rows for u in units) == 1000
    assert [u.first_row for u in units] == [sum(x.rows for x in units[:i]) for i in range(len(units))]
    assert len({u.id for u in units}) == len(units)


def test_a_shard_without_row_groups_is_one_empty_unit(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    shard = discover([str(path)])[0]
    units = plan_units(shard, pq.ParquetFile(path).metadata, unit_bytes=1)
    assert len(units) == 1 and units[0].rows == 0


def test_a_missing_required_column_names_shard_column_and_what_it_has(tmp_path):
    path = write_shard(tmp_path / "s.parquet", ["x"])
    shard = discover([str(path)])[0]
    columns, required = preset_columns(None, {"text": "content"})
    with pytest.raises(UsageError) as error:
        resolve_columns(shard, pq.read_schema(path), columns, required)
    message = str(error.value)
    assert str(path) in message and "'content'" in message and "text, id, url" in message


def test_optional_preset_columns_may_be_absent(tmp_path):
    path = write_shard(tmp_path / "s.parquet", ["x"])
    shard = discover([str(path)])[0]
    columns, required = preset_columns("fineweb", {})
    assert resolve_columns(shard, pq.read_schema(path), columns, required) == {"text": "text", "id": "id", "url": "url"}


def test_not_parquet_is_an_input_error_naming_the_file(tmp_path):
    path = tmp_path / "junk.parquet"
    path.write_bytes(b"\x00garbage" * 100)
    shard = discover([str(path)])[0]
    with pytest.raises(InputError, match="junk.parquet"):
        open_parquet(shard)


def test_binary_text_with_invalid_utf8_is_decoded_with_replacement(tmp_path):
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"text": pa.array([b"good robot", b"bad \xff\xfe byte", None], pa.binary())}), path)
    shard = discover([str(path)])[0]
    parquet = open_parquet(shard)
    unit = plan_units(shard, parquet.metadata, 1 << 30)[0]
    batch = next(iter_batches(parquet, unit, {"text": "text"}, 10))
    assert batch["text"].to_pylist() == ["good robot", "bad \ufffd\ufffd byte", None]


def test_dotted_columns_read_struct_fields(tmp_path):
    path = tmp_path / "dolma.parquet"
    metadata = pa.array([{"url": "https://a.example.org/x", "lang": "en"}])
    pq.write_table(pa.table({"id": ["d1"], "text": ["hello"], "metadata": metadata}), path)
    shard = discover([str(path)])[0]
    parquet = open_parquet(shard)
    columns, required = preset_columns("dolma", {})
    roles = resolve_columns(shard, parquet.schema_arrow, columns, required)
    assert roles == {"text": "text", "id": "id", "url": "metadata.url"}
    batch = next(iter_batches(parquet, plan_units(shard, parquet.metadata, 1 << 30)[0], roles, 10))
    assert batch["url"].to_pylist() == ["https://a.example.org/x"]


@pytest.mark.shared_data
def test_real_shards_are_planned_whole():
    shards = discover([str(SHARDS)])
    assert len(shards) == 4
    rows = sum(u.rows for s in shards for u in plan_units(s, open_parquet(s).metadata, 256 * 2**20))
    assert rows == 4636


def test_default_columns_are_fineweb():
    assert Columns().named() == {
        "text": "text",
        "id": "id",
        "url": "url",
        "date": "date",
        "dump": "dump",
        "tokens": "token_count",
    }
