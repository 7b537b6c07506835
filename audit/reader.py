"""Reading corpus shards: find them, fingerprint them, cut them into units of work, stream record batches.

Two formats, told apart by the file name: Parquet (``*.parquet``) and JSON Lines (``*.jsonl`` or ``*.json``, plain
or compressed as ``.gz`` or ``.zst``; one JSON object per line, as Dolma and C4 ship). Inputs are local paths,
directories (searched recursively for both), globs, or URIs that pyarrow's filesystems understand
(``s3://bucket/prefix``).

A Parquet unit of work is a shard, or a range of its row groups when the shard is large, so that one multi-GB file
does not serialise a job; batches are read row group by row group. A JSON Lines unit is the whole file (a
compressed stream cannot be entered in the middle, and its row count is unknown until read): it is read line by
line, ``batch_rows`` documents at a time. Either way memory stays bounded whatever the shard size, and both
yield the same batches (role -> Arrow array), so the scanner does not know which format it reads.
"""

from __future__ import annotations

import glob
import io
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .config import Columns
from .errors import InputError, UsageError
from .jsonl import read_objects

PARQUET_SUFFIX = ".parquet"
JSONL_SUFFIXES = (".jsonl", ".json")
CODECS = {".gz": "gzip", ".zst": "zstd"}  # compressed JSON Lines, read and written with pyarrow's codecs
SNIFF_RECORDS = 100  # a JSON Lines shard's columns are the keys of its first records


@dataclass(frozen=True)
class Shard:
    """One shard file. ``relpath`` is its path below the input it was found under (export mirrors it)."""

    uri: str
    relpath: str
    size: int
    mtime_ns: int

    def fingerprint(self) -> dict:
        return {"path": self.uri, "size": self.size, "mtime_ns": self.mtime_ns}

    @property
    def is_jsonl(self) -> bool:
        return not self.relpath.endswith(PARQUET_SUFFIX)

    @property
    def codec(self) -> str | None:
        """The compression of a JSON Lines shard (``gzip``, ``zstd``, or None when plain)."""
        return next((codec for suffix, codec in CODECS.items() if self.relpath.endswith(suffix)), None)


def is_shard_name(name: str) -> bool:
    """Whether a file found in an input directory is a shard: ``*.parquet``, or ``*.jsonl``/``*.json`` maybe
    compressed."""
    if name.startswith("."):
        return False
    for suffix in CODECS:
        name = name.removesuffix(suffix)
    return name.endswith((PARQUET_SUFFIX, *JSONL_SUFFIXES))


def shard_stem(relpath: str) -> str:
    """The shard's path without its format and compression suffixes (``a/b.jsonl.gz`` -> ``a/b``)."""
    for suffix in CODECS:
        relpath = relpath.removesuffix(suffix)
    for suffix in (PARQUET_SUFFIX, *JSONL_SUFFIXES):
        relpath = relpath.removesuffix(suffix)
    return relpath


@dataclass(frozen=True)
class Unit:
    """A range of row groups ``[start, stop)`` of one shard; ``first_row`` is the shard row of its first row.

    A JSON Lines unit is the whole file as one block ``[0, 1)``; its ``rows`` are unknown (None) until it is read,
    and its ``text_bytes`` is the file's size on disk.
    """

    shard: Shard
    start: int
    stop: int
    first_row: int
    rows: int | None
    text_bytes: int

    @property
    def id(self) -> str:
        return f"{self.shard.relpath.replace('/', '__')}@{self.start}-{self.stop}"

    def to_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path for a local path or a URI."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _uri(spec: str, fs_path: str) -> str:
    """The URI of ``fs_path``, a file found under the input ``spec`` (a local path stays a path)."""
    if "://" not in spec:
        return fs_path
    return f"{spec.split('://', 1)[0]}://{fs_path}"


def discover(inputs: list[str]) -> list[Shard]:
    """All shards named by ``inputs``, in a stable order. Raises UsageError when one names nothing."""
    shards: list[Shard] = []
    for spec in inputs:
        found = _discover_one(spec)
        if not found:
            raise UsageError(
                f"{spec}: no shards found there (*.parquet, *.jsonl or *.json, plain, .gz or .zst). "
                "Pass shard files, directories holding them, or a glob."
            )
        shards.extend(found)
    by_rel: dict[str, str] = {}
    for shard in shards:
        other = by_rel.setdefault(shard.relpath, shard.uri)
        if other != shard.uri:
            raise UsageError(
                f"two inputs give the same relative shard path {shard.relpath!r} ({other} and {shard.uri}); "
                "pass their common parent directory instead so each shard keeps a distinct path."
            )
    unique = {s.uri: s for s in shards}
    return sorted(unique.values(), key=lambda s: (s.relpath, s.uri))


def _discover_one(spec: str) -> list[Shard]:
    if "://" not in spec and glob.has_magic(spec):
        root = glob_root(spec)
        paths = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        return [_local_shard(p, root) for p in paths]
    fs, path = filesystem(spec)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise UsageError(f"{spec}: no such file or directory.")
    if info.type == pafs.FileType.File:
        return [Shard(_uri(spec, path), os.path.basename(path), info.size or 0, info.mtime_ns or 0)]
    selector = pafs.FileSelector(path, recursive=True)
    shards = []
    for entry in fs.get_file_info(selector):
        if entry.type == pafs.FileType.File and is_shard_name(entry.base_name):
            rel = os.path.relpath(entry.path, path).replace(os.sep, "/")
            shards.append(Shard(_uri(spec, entry.path), rel, entry.size or 0, entry.mtime_ns or 0))
    return shards


def glob_root(pattern: str) -> str:
    """The part of a glob before its first wildcard (``data/**/*.jsonl`` -> ``data``)."""
    parts = Path(pattern).parts
    fixed = parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    return str(Path(*fixed)) if fixed else "."


def _local_shard(path: str, root: str) -> Shard:
    stat = os.stat(path)
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    return Shard(os.path.abspath(path), rel, stat.st_size, stat.st_mtime_ns)


def open_parquet(shard: Shard) -> pq.ParquetFile:
    """Open a shard, turning any failure into an InputError that names it."""
    fs, path = filesystem(shard.uri)
    try:
        return pq.ParquetFile(fs.open_input_file(path))
    except Exception as error:  # pyarrow raises several types for corrupt, truncated or non-Parquet files
        raise InputError(f"{shard.uri}: not a readable Parquet file ({error}). Re-copy or remove it.") from error


class ParquetSource:
    """An open Parquet shard: its schema, its units (row-group ranges) and their batches."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.file = open_parquet(shard)
        self.schema: pa.Schema | None = self.file.schema_arrow

    def units(self, unit_bytes: int) -> list[Unit]:
        return plan_units(self.shard, self.file.metadata, unit_bytes)

    def batches(self, unit: Unit, roles: dict[str, str], batch_rows: int) -> Iterator[dict[str, pa.Array]]:
        return iter_batches(self.file, unit, roles, batch_rows)


class JsonlSource:
    """An open JSON Lines shard. Its ``schema`` holds the keys (and nested keys) of its first SNIFF_RECORDS
    documents, None for a file without any; a key that first appears later in the file is not read."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        chunks = self.chunks(SNIFF_RECORDS)
        first = next(chunks, ([], []))[1]
        chunks.close()
        self.schema: pa.Schema | None = _sniffed_schema(first) if first else None

    def units(self, unit_bytes: int) -> list[Unit]:
        return [Unit(self.shard, 0, 1, 0, None, self.shard.size)]

    def batches(self, unit: Unit, roles: dict[str, str], batch_rows: int) -> Iterator[dict[str, pa.Array]]:
        for _, records in self.chunks(batch_rows):
            yield role_arrays(records, roles)

    def chunks(self, batch_rows: int) -> Iterator[tuple[list[bytes], list[dict]]]:
        """(raw lines, their documents) ``batch_rows`` at a time; blank lines are skipped. InputError names the
        file and line of anything unreadable."""
        fs, path = filesystem(self.shard.uri)
        uri, first_line = self.shard.uri, 0
        try:
            with fs.open_input_stream(path, compression=self.shard.codec) as raw:
                stream = io.BufferedReader(raw, buffer_size=2**20)
                while lines := stream.readlines(2**20):  # about 1 MB of whole lines at a time
                    yield from _parse(lines, uri, first_line, batch_rows)
                    first_line += len(lines)
        except (OSError, EOFError, pa.ArrowException) as error:
            raise InputError(
                f"{uri}: not a readable JSON Lines file after line {first_line} ({error}). Re-copy or remove it."
            ) from error


def _parse(lines: list[bytes], uri: str, first_line: int, batch_rows: int) -> Iterator[tuple[list[bytes], list[dict]]]:
    """Parse a block of lines into chunks of at most ``batch_rows`` documents."""

    def where(number: int) -> str:
        return f"{uri}:{first_line + number}"

    decoded = (line.decode("utf-8", "replace") for line in lines)  # invalid UTF-8 replaced, as for Parquet
    kept_lines, records = [], []
    for number, record in read_objects(decoded, where, InputError):
        kept_lines.append(lines[number - 1])
        records.append(record)
        if len(records) == batch_rows:
            yield kept_lines, records
            kept_lines, records = [], []
    if records:
        yield kept_lines, records


def role_arrays(records: list[dict], roles: dict[str, str]) -> dict[str, pa.Array]:
    """Role -> array of the documents' values, as the Parquet path gives them."""
    paths = {role: name.split(".") for role, name in roles.items()}
    return {role: _role_array(role, [_lookup(r, path) for r in records]) for role, path in paths.items()}


def _lookup(record: dict, path: list[str]) -> object:
    """The value at a dotted path split into its steps (``metadata.url``), or None when any step is missing."""
    value: object = record
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _role_array(role: str, values: list) -> pa.Array:
    """A JSON Lines column as the Parquet path gives it: token counts as integers, everything else as text."""
    if role == "tokens":
        return pa.array([v if isinstance(v, int) and not isinstance(v, bool) else None for v in values], pa.int64())
    kind = pa.large_string() if role == "text" else pa.string()
    return pa.array([v if v is None or isinstance(v, str) else json.dumps(v) for v in values], kind)


def _sniffed_schema(records: list[dict]) -> pa.Schema:
    """A schema naming every key (objects as structs of their keys) seen in ``records``; leaf types are not kept."""

    def merge(tree: dict, record: dict) -> None:
        for key, value in record.items():
            child = tree.setdefault(key, {})
            if isinstance(value, dict):
                merge(child, value)

    def kind(tree: dict) -> pa.DataType:
        return pa.struct([pa.field(k, kind(v)) for k, v in tree.items()]) if tree else pa.null()

    tree: dict = {}
    for record in records:
        merge(tree, record)
    return pa.schema([pa.field(k, kind(v)) for k, v in tree.items()])


Source = ParquetSource | JsonlSource


def open_source(shard: Shard) -> Source:
    """Open a shard of either format; InputError names it when it cannot be read."""
    return JsonlSource(shard) if shard.is_jsonl else ParquetSource(shard)


def resolve_columns(
    shard: Shard, schema: pa.Schema | None, columns: Columns, required: frozenset[str]
) -> dict[str, str]:
    """Role -> column for the roles this shard has (the first of a role's candidate names present); UsageError
    naming the shard when a required one is missing. A shard with no schema (an empty JSON Lines file) has
    nothing to contradict: every role takes its first candidate."""
    present: dict[str, str] = {}
    for role, names in columns.candidates().items():
        found = names[0] if schema is None else next((name for name in names if _has_column(schema, name)), None)
        if found is not None:
            present[role] = found
        elif role in required:
            have = ", ".join(schema.names)
            raise UsageError(
                f"{shard.uri}: no column {' or '.join(map(repr, names))} for the {role} (the shard has: {have}). "
                f"Name the right one with --{role if role != 'tokens' else 'token'}-column or pick a --preset."
            )
    return present


def _has_column(schema: pa.Schema, dotted: str) -> bool:
    head, *rest = dotted.split(".")
    if head not in schema.names:
        return False
    field_type = schema.field(head).type
    for part in rest:
        if not pa.types.is_struct(field_type) or field_type.get_field_index(part) < 0:
            return False
        field_type = field_type.field(part).type
    return True


def plan_units(shard: Shard, metadata: pq.FileMetaData, unit_bytes: int) -> list[Unit]:
    """Cut a shard into row-group ranges of about ``unit_bytes`` uncompressed bytes (a shard with no row group is
    one empty unit)."""
    units: list[Unit] = []
    start, first_row, rows, size = 0, 0, 0, 0
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        rows += group.num_rows
        size += group.total_byte_size
        if size >= unit_bytes:
            units.append(Unit(shard, start, index + 1, first_row, rows, size))
            start, first_row, rows, size = index + 1, first_row + rows, 0, 0
    if start < metadata.num_row_groups or not units:
        units.append(Unit(shard, start, metadata.num_row_groups, first_row, rows, size))
    return units


def iter_batches(
    parquet: pq.ParquetFile, unit: Unit, roles: dict[str, str], batch_rows: int
) -> Iterator[dict[str, pa.Array]]:
    """Yield dicts role -> array for the unit's rows, text decoded to strings."""
    top = sorted({name.split(".")[0] for name in roles.values()})
    if unit.stop <= unit.start:
        return
    batches = parquet.iter_batches(batch_size=batch_rows, row_groups=range(unit.start, unit.stop), columns=top)
    for batch in batches:
        yield {role: read_column(batch, name) for role, name in roles.items()}


def read_column(batch: pa.RecordBatch, dotted: str) -> pa.Array:
    """A column (or struct field, ``metadata.url``) of a batch as the scan reads it: binary decoded to text."""
    return _plain(_select(batch, dotted))


def _select(batch: pa.RecordBatch, dotted: str) -> pa.Array:
    head, *rest = dotted.split(".")
    array = batch.column(head)
    for part in rest:
        array = pc.struct_field(array, part)
    return array


def _plain(array: pa.Array) -> pa.Array:
    """Strings and numbers as they are; binary decoded (invalid UTF-8 replaced); anything else stringified."""
    kind = array.type
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
    ):
        return array
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            return array.cast(pa.large_string())
        except pa.ArrowInvalid:
            values = [None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()]
            return pa.array(values, type=pa.large_string())
    if pa.types.is_dictionary(kind):
        return _plain(array.dictionary_decode())
    return array.cast(pa.string())
