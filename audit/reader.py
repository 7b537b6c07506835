"""Reading Parquet shards: find them, fingerprint them, cut them into units of work, stream record batches.

Inputs are local paths, directories (searched recursively for ``*.parquet``), globs, or URIs that pyarrow's
filesystems understand (``s3://bucket/prefix``). A unit of work is a shard, or a range of its row groups
when the shard is large, so that one multi-GB file does not serialise a job. Batches are read row group by
row group, so memory stays bounded whatever the shard size.
"""

from __future__ import annotations

import glob
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


@dataclass(frozen=True)
class Shard:
    """One Parquet file. ``relpath`` is its path below the input it was found under (export mirrors it)."""

    uri: str
    relpath: str
    size: int
    mtime_ns: int

    def fingerprint(self) -> dict:
        return {"path": self.uri, "size": self.size, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class Unit:
    """A range of row groups ``[start, stop)`` of one shard; ``first_row`` is the shard row of its first row."""

    shard: Shard
    start: int
    stop: int
    first_row: int
    rows: int
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
    """All Parquet shards named by ``inputs``, in a stable order. Raises UsageError when one names nothing."""
    shards: list[Shard] = []
    for spec in inputs:
        found = _discover_one(spec)
        if not found:
            raise UsageError(f"{spec}: no *.parquet files found there. Pass Parquet files, directories holding them, or a glob.")
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
        root = _glob_root(spec)
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
        if entry.type == pafs.FileType.File and entry.base_name.endswith(".parquet") and not entry.base_name.startswith("."):
            rel = os.path.relpath(entry.path, path).replace(os.sep, "/")
            shards.append(Shard(_uri(spec, entry.path), rel, entry.size or 0, entry.mtime_ns or 0))
    return shards


def _glob_root(pattern: str) -> str:
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


def resolve_columns(shard: Shard, schema: pa.Schema, columns: Columns, required: frozenset[str]) -> dict[str, str]:
    """Role -> column for the roles this shard has; UsageError naming the shard when a required one is missing."""
    present: dict[str, str] = {}
    for role, name in columns.named().items():
        if _has_column(schema, name):
            present[role] = name
        elif role in required:
            have = ", ".join(schema.names)
            raise UsageError(
                f"{shard.uri}: no column {name!r} for the {role} (the shard has: {have}). "
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
    """Cut a shard into row-group ranges of about ``unit_bytes`` uncompressed bytes (a shard with no row group is one empty unit)."""
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


def iter_batches(parquet: pq.ParquetFile, unit: Unit, roles: dict[str, str], batch_rows: int) -> Iterator[dict[str, pa.Array]]:
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
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
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
