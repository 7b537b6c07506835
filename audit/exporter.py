"""``export``: filtered copies of the scanned shards, and dolma-style attribute files beside them.

Modes: ``drop`` removes the documents holding a flagged passage, ``keep`` keeps only those, ``redact`` cuts the
flagged passages' character spans out of the text (optionally leaving a placeholder), ``annotate`` keeps every row
and adds ``audit_*`` tag columns. A passage is flagged when its label is one of ``labels`` and, when ``min_score``
is given, the probability of that label is at least ``min_score`` (the scan records only passages labelled other
than ``no_ai``, so a score threshold can only narrow the label's decision, never widen it).

Every input shard gives ``OUT/<relpath>`` (same schema, schema metadata and codec; ``annotate`` adds columns) and
``OUT/attributes/<relpath minus .parquet>.jsonl.gz``: one JSON line per input row, in input order, with the row's id
and its tags as Dolma attributes (``[[start, end, score], ...]`` in code points), so a pipeline can filter the
original corpus without this copy. The attributes: ``corpus_audit__passage__<label>`` (the passages labelled so,
scored with that label's probability), ``corpus_audit__passage__flagged`` (the passages this export flags),
``corpus_audit__document__flagged`` (``[[0, length, 1.0 or 0.0]]``) and ``corpus_audit__document__max_p_<label>``
(empty for a row the gate passed over, which was never classified). Shards stream batch by batch; each output file
is written atomically and a shard's marker under ``OUT/.export/`` is written last, so a killed export resumes
where it stopped and a finished one re-run does nothing. ``OUT/export_manifest.json`` holds the counts per shard
and their reconciliation with the run's ``summary.json``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .version import __version__
from .atomic import clean_temporaries, write_atomic, write_json_atomic
from .config import Columns
from .errors import InputError, UsageError
from .executors.progress import Progress
from .labels import AI_LABELS
from .reader import JsonlSource, Shard, filesystem, open_parquet, read_column, resolve_columns, role_arrays
from .rundir import SCHEMA_VERSION, ExportDir, RunDir

ATTRIBUTE_PREFIX = "corpus_audit"
TAG_PREFIX = "audit_"
BATCH_BYTES = 64 * 2**20  # about this much uncompressed data is read at a time
ROW_GROUP_BYTES = 128 * 2**20  # cap on the uncompressed size of an output row group
PASSAGE_COLUMNS = [
    "shard",
    "row",
    "char_start",
    "char_end",
    "label",
    "score",
    *(f"p_{label}" for label in AI_LABELS),
    "cluster_id",
]
# Parquet footer codec names -> pyarrow writer names (codecs pyarrow cannot write fall back to zstd)
WRITER_CODECS = {
    "UNCOMPRESSED": "none",
    "SNAPPY": "snappy",
    "GZIP": "gzip",
    "BROTLI": "brotli",
    "LZ4": "lz4",
    "LZ4_RAW": "lz4",
    "ZSTD": "zstd",
}


@dataclass(frozen=True)
class Selection:
    """Which passages count as flagged."""

    labels: tuple[str, ...]
    min_score: float | None

    def flags(self, passages: pa.Table) -> np.ndarray:
        """A boolean per passage row."""
        labels = passages["label"].to_numpy(zero_copy_only=False)
        flagged = np.isin(labels, self.labels)
        if self.min_score is not None:
            own = np.zeros(len(labels), dtype=np.float32)
            for label in self.labels:
                mine = labels == label
                own[mine] = passages[f"p_{label}"].to_numpy(zero_copy_only=False)[mine]
            flagged &= own >= self.min_score
        return flagged


@dataclass
class ExportOutcome:
    manifest: dict
    out: Path
    exported_shards: int
    seconds: float

    @property
    def exit_code(self) -> int:
        return 1 if self.manifest["failures"] or not self.manifest["reconciliation"]["ok"] else 0


def export(
    run_dir: str | Path,
    out: str | Path,
    mode: str = "drop",
    labels: Iterable[str] = ("misaligned_ai",),
    min_score: float | None = None,
    placeholder: str = "",
    progress: bool | None = None,
) -> ExportOutcome:
    """Export the shards scanned into ``run_dir`` to ``out`` (or resume / confirm an export there)."""
    started = time.perf_counter()
    run = RunDir(Path(run_dir))
    target = ExportDir(Path(out))
    selection = _selection(mode, labels, min_score)
    scan_manifest, summary = _read_run(run)
    failed_inputs = {failure["input"] for failure in summary["failures"]}
    shards = [_shard(entry) for entry in scan_manifest["shards"]]
    _check_out(target, run, shards)
    _check_unchanged(shards)
    identity = {"path": str(run.root.resolve()), "summary_sha256": hashlib.sha256(run.summary.read_bytes()).hexdigest()}
    options = {"mode": mode, "labels": list(selection.labels), "min_score": min_score, "placeholder": placeholder}
    todo = [s for s in shards if s.uri not in failed_inputs]
    previous = _previous_export(target, identity, options)
    if previous and previous.get("finished") and all(target.done(s.relpath, s.fingerprint()) for s in todo):
        return ExportOutcome(previous, target.root, 0, time.perf_counter() - started)

    target.root.mkdir(parents=True, exist_ok=True)
    clean_temporaries(target.root)
    header = {"schema_version": SCHEMA_VERSION, "tool_version": __version__, "run": identity, "options": options}
    write_json_atomic(target.manifest, {**header, "finished": False})
    tags = _RunTags(run, scan_manifest, selection)
    columns = Columns(**{role: scan_manifest["options"]["columns"].get(role) for role in ("text", "id")})
    pending = [s for s in todo if target.done(s.relpath, s.fingerprint()) is None]
    rows = {s.relpath: 0 for s in pending}
    for unit in scan_manifest["units"]:
        if unit["shard"] in rows:
            rows[unit["shard"]] += (
                unit["rows"] or 0
            )  # None: a JSON Lines file, whose rows the scan counted but did not plan
    bar = Progress(sum(rows.values()) or None, len(pending), progress, desc="export")
    results, failures = (
        [],
        [{"input": uri, "error": "failed in the scan; not exported"} for uri in sorted(failed_inputs)],
    )
    try:
        for shard in todo:
            done = target.done(shard.relpath, shard.fingerprint())
            if done is None:
                try:
                    done = _export_shard(shard, target, mode, placeholder, columns, tags.for_shard(shard.relpath), bar)
                except InputError as error:
                    failures.append({"input": shard.uri, "error": str(error)})
                    continue
                bar.unit_done()
            results.append(done)
    finally:
        bar.close()
    manifest = {
        **header,
        "finished": True,
        "seconds": round(time.perf_counter() - started, 3),
        "shards": results,
        "failures": failures,
        "totals": _totals(results),
    }
    manifest["reconciliation"] = _reconcile(manifest["totals"], summary, selection, mode, placeholder, bool(failures))
    write_json_atomic(target.manifest, manifest)
    return ExportOutcome(manifest, target.root, len(pending), time.perf_counter() - started)


# -- checks before any work ----------------------------------------------------------------------------------


def _selection(mode: str, labels: Iterable[str], min_score: float | None) -> Selection:
    if mode not in MODES:
        raise UsageError(f"unknown export mode {mode!r}; use one of {', '.join(MODES)}")
    chosen = tuple(dict.fromkeys(label.strip() for label in labels if label.strip()))
    if not chosen:
        raise UsageError(f"--labels names no label; use one or more of {', '.join(AI_LABELS)}")
    unknown = [label for label in chosen if label not in AI_LABELS]
    if unknown:
        raise UsageError(
            f"unknown label(s) {', '.join(unknown)} in --labels; use one or more of {', '.join(AI_LABELS)} "
            "(no_ai passages are not recorded by the scan, so they cannot be exported by label)"
        )
    if min_score is not None and not 0 <= min_score <= 1:
        raise UsageError(f"--min-score must be between 0 and 1, got {min_score}")
    return Selection(chosen, min_score)


def _read_run(run: RunDir) -> tuple[dict, dict]:
    """The scan's manifest and summary; UsageError unless the scan finished over the whole corpus."""
    how = f"run `corpus-audit scan ... --out {run.root}` to completion first"
    if not run.summary.is_file():
        raise UsageError(f"{run.root} has no {run.summary.name}; {how}")
    manifest = run.read_manifest()
    if manifest is None or not manifest.get("finished"):
        raise UsageError(f"{run.root} holds an unfinished scan ({run.manifest.name} missing or not finished); {how}")
    if not run.passages.exists():
        raise UsageError(f"{run.passages} is missing; re-run the scan command to rebuild it")
    if manifest["options"].get("sample_rate", 1) < 1:
        raise UsageError(
            f"{run.root} scanned only a sample of documents (--sample-rate {manifest['options']['sample_rate']}); "
            "an export needs every document scanned: scan again without --sample-rate into a new run directory"
        )
    return manifest, json.loads(run.summary.read_text())


def _shard(entry: dict) -> Shard:
    return Shard(entry["path"], entry["relpath"], entry["size"], entry["mtime_ns"])


def _input_root(shard: Shard) -> Path | None:
    """The local folder the shard was found under (None for a URI)."""
    if "://" in shard.uri:
        return None
    path = Path(shard.uri).resolve()
    return path.parents[len(Path(shard.relpath).parts) - 1]


def _check_out(export_dir: ExportDir, run: RunDir, shards: list[Shard]) -> None:
    out = export_dir.root
    target = out.resolve()
    if target == run.root.resolve():
        raise UsageError(f"--out {out} is the run directory; write the export somewhere else")
    for root in sorted({r for s in shards if (r := _input_root(s)) is not None}):
        if target == root or root in target.parents or target in root.parents:
            raise UsageError(
                f"--out {out} is inside, or holds, the input folder {root}; an export never writes into or over its "
                "input: choose a directory outside it"
            )
    if out.is_dir() and not export_dir.manifest.is_file() and any(out.iterdir()):
        raise UsageError(
            f"--out {out} is a non-empty directory holding no {export_dir.manifest.name}; choose a new or empty "
            "directory"
        )


def _check_unchanged(shards: list[Shard]) -> None:
    """Every input shard must be the very file the scan read."""
    for shard in shards:
        fs, path = filesystem(shard.uri)
        info = fs.get_file_info(path)
        now = {"size": info.size, "mtime_ns": info.mtime_ns} if info.is_file else None
        if now != {"size": shard.size, "mtime_ns": shard.mtime_ns}:
            state = (
                "is gone"
                if now is None
                else f"changed (size {shard.size} -> {now['size']}, mtime_ns {shard.mtime_ns} -> {now['mtime_ns']})"
            )
            raise UsageError(
                f"{shard.uri} {state} since the scan; the run's flags no longer match it. Re-run the scan command "
                "on the same --out to rescan it, then export again"
            )


def _previous_export(out: ExportDir, identity: dict, options: dict) -> dict | None:
    try:
        previous = json.loads(out.manifest.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as error:
        raise UsageError(f"{out.manifest} is not valid JSON ({error}); choose a new --out") from None
    if previous.get("run") != identity or previous.get("options") != options:
        raise UsageError(
            f"{out.root} holds an export of another run or with other options ({previous.get('options')}); re-run the "
            "same command to resume it, or choose a new --out"
        )
    return previous


# -- what the run knows about each shard ----------------------------------------------------------------------


class _RunTags:
    """The run's AI passages (without text, sorted by shard, row, offset) and its gated documents' scores."""

    def __init__(self, run: RunDir, scan_manifest: dict, selection: Selection) -> None:
        passages = pq.read_table(run.passages, columns=PASSAGE_COLUMNS).sort_by(
            [("shard", "ascending"), ("row", "ascending"), ("char_start", "ascending")]
        )
        self.passages = passages.append_column("flagged", pa.array(selection.flags(passages)))
        shard_names = self.passages["shard"].to_numpy(zero_copy_only=False)
        names, starts = np.unique(shard_names, return_index=True)
        ends = np.append(starts[1:], len(shard_names))
        self.ranges = {str(name): (int(a), int(b)) for name, a, b in zip(names, starts, ends, strict=True)}
        self.run = run
        self.units: dict[str, list[str]] = {}
        for unit in scan_manifest["units"]:
            self.units.setdefault(unit["shard"], []).append(unit["id"])

    def for_shard(self, relpath: str) -> _ShardTags:
        a, b = self.ranges.get(relpath, (0, 0))
        columns = ["row", *(f"max_p_{label}" for label in AI_LABELS)]
        docs = [
            pq.read_table(self.run.unit_table(unit, "docs"), columns=columns) for unit in self.units.get(relpath, [])
        ]
        docs_table = pa.concat_tables(docs).sort_by("row") if docs else None
        return _ShardTags(self.passages.slice(a, b - a), docs_table)


@dataclass
class _ShardTags:
    passages: pa.Table  # sorted by row, char_start
    docs: pa.Table | None  # gated documents: row, max_p_<label>; sorted by row

    def __post_init__(self) -> None:
        self.passage_rows = self.passages["row"].to_numpy()
        self.doc_rows = None if self.docs is None else self.docs["row"].to_numpy()

    def batch(self, first_row: int, n: int) -> _BatchTags:
        rows = self.passage_rows
        a, b = np.searchsorted(rows, [first_row, first_row + n])
        passages = self.passages.slice(a, b - a)
        local = rows[a:b] - first_row
        flagged = passages["flagged"].to_numpy(zero_copy_only=False)
        flagged_doc = np.zeros(n, dtype=bool)
        flagged_doc[local[flagged]] = True
        max_p = {label: np.full(n, np.nan, dtype=np.float32) for label in AI_LABELS}
        if self.docs is not None:
            doc_rows = self.doc_rows
            c, d = np.searchsorted(doc_rows, [first_row, first_row + n])
            for label in AI_LABELS:
                max_p[label][doc_rows[c:d] - first_row] = (
                    self.docs[f"max_p_{label}"].slice(c, d - c).to_numpy(zero_copy_only=False)
                )
        return _BatchTags(passages, local, flagged, flagged_doc, max_p)


@dataclass
class _BatchTags:
    """The tags of one batch of a shard; ``local`` is each passage's row within the batch."""

    passages: pa.Table
    local: np.ndarray
    flagged: np.ndarray
    flagged_doc: np.ndarray
    max_p: dict[str, np.ndarray]

    def flagged_spans(self) -> dict[int, list[tuple[int, int]]]:
        """Batch row -> its flagged spans, overlapping or touching spans merged."""
        spans: dict[int, list[tuple[int, int]]] = {}
        starts = self.passages["char_start"].to_numpy()[self.flagged].tolist()
        ends = self.passages["char_end"].to_numpy()[self.flagged].tolist()
        for row, start, end in zip(self.local[self.flagged].tolist(), starts, ends, strict=True):
            merged = spans.setdefault(row, [])
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return spans

    def offsets(self) -> np.ndarray:
        """List offsets grouping the passages by batch row."""
        counts = np.bincount(self.local, minlength=len(self.flagged_doc))
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)


# -- one shard --------------------------------------------------------------------------------------------------


@dataclass
class _Counts:
    rows_in: int = 0
    rows_out: int = 0
    documents_flagged: int = 0
    passages_flagged: int = 0
    characters_flagged: int = 0
    characters_in: int = 0
    characters_out: int = 0
    characters_redacted: int = 0
    spans_redacted: int = 0


def _export_shard(
    shard: Shard, out: ExportDir, mode: str, placeholder: str, columns: Columns, tags: _ShardTags, bar: Progress
) -> dict:
    """Write the shard's output and attribute files, then its marker; returns its stats."""
    if shard.is_jsonl:
        return _export_jsonl_shard(shard, out, mode, placeholder, columns, tags, bar)
    started = time.perf_counter()
    parquet = open_parquet(shard)
    roles = _roles(shard, parquet.schema_arrow, columns, mode)
    schema = _output_schema(parquet.schema_arrow, mode)
    codec = _codec(parquet.metadata)
    counts = _Counts()
    row_groups = 0

    def write_both(shard_tmp: str, attributes_tmp: str) -> None:
        nonlocal row_groups
        # no name and no time in the gzip header: the same export gives the same bytes
        with (
            pq.ParquetWriter(shard_tmp, schema, compression=codec) as writer,
            open(attributes_tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as attributes,
        ):
            grouped = _RowGroups(writer, _row_group_rows(parquet.metadata))
            first_row = 0
            for batch in parquet.iter_batches(batch_size=_batch_rows(parquet.metadata), use_threads=True):
                batch_tags = tags.batch(first_row, batch.num_rows)
                lengths = pc.fill_null(pc.utf8_length(read_column(batch, roles["text"])), 0).to_numpy(
                    zero_copy_only=False
                )
                grouped.add(_transform(batch, batch_tags, lengths, mode, placeholder, roles["text"], counts))
                attributes.write(
                    _attribute_lines(batch, batch_tags, lengths, roles, shard.relpath, first_row).encode("utf-8")
                )
                first_row += batch.num_rows
                bar.advance(batch.num_rows, batch.nbytes)
            row_groups = grouped.close()

    _write_outputs(shard, out, write_both)
    return _finish(
        shard,
        out,
        counts,
        started,
        row_groups_in=parquet.metadata.num_row_groups,
        row_groups_out=row_groups,
        codec=codec,
    )


def _export_jsonl_shard(
    shard: Shard, out: ExportDir, mode: str, placeholder: str, columns: Columns, tags: _ShardTags, bar: Progress
) -> dict:
    """The JSON Lines twin of a Parquet shard's export: the same rows out, in the same compression, each line
    copied byte for byte unless the mode changes its document (redact, annotate)."""
    started = time.perf_counter()
    source = JsonlSource(shard)
    roles = _roles(shard, source.schema, columns, mode)
    _output_schema(source.schema or pa.schema([]), mode)  # annotate must not overwrite a document's own keys
    counts = _Counts()

    def write_both(shard_tmp: str, attributes_tmp: str) -> None:
        with (
            pa.output_stream(shard_tmp, compression=shard.codec) as output,
            open(attributes_tmp, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as attributes,
        ):
            first_row = 0
            for lines, records in source.chunks(JSONL_BATCH_ROWS):
                arrays = role_arrays(records, roles)
                batch = pa.RecordBatch.from_pydict({**arrays, ROW: pa.array(np.arange(len(records)))})
                batch_tags = tags.batch(first_row, len(records))
                lengths = pc.fill_null(pc.utf8_length(arrays["text"]), 0).to_numpy(zero_copy_only=False)
                result = _transform(batch, batch_tags, lengths, mode, placeholder, "text", counts)
                output.write(_jsonl_output(result, lines, records, roles["text"], mode))
                attributes.write(
                    _attribute_lines(
                        batch, batch_tags, lengths, {r: r for r in arrays}, shard.relpath, first_row
                    ).encode("utf-8")
                )
                first_row += len(records)
                bar.advance(len(records), sum(map(len, lines)))

    _write_outputs(shard, out, write_both)
    return _finish(shard, out, counts, started, row_groups_in=None, row_groups_out=None, codec=shard.codec or "none")


JSONL_BATCH_ROWS = 2048
ROW = "__row"  # the batch row of each document, to find its line again after drop, keep, redact or annotate


def _jsonl_output(
    result: pa.RecordBatch, lines: list[bytes], records: list[dict], text_column: str, mode: str
) -> bytes:
    """The lines of the documents ``result`` keeps: unchanged, or rewritten with the redacted text or the tags."""
    rows = result.column(ROW).to_pylist()
    rewritten: dict[int, dict] = {}
    if MODES[mode].rewrites_text:
        for r, text in zip(rows, result.column("text").to_pylist(), strict=True):
            if text != records[r].get(text_column):
                rewritten[r] = {**records[r], text_column: text}
    if MODES[mode].adds_tags:
        for r, tag_row in zip(rows, result.select([f.name for f in TAG_FIELDS]).to_pylist(), strict=True):
            rewritten[r] = {**rewritten.get(r, records[r]), **tag_row}
    out = []
    for r in rows:
        line = (json.dumps(rewritten[r], ensure_ascii=False) + "\n").encode("utf-8") if r in rewritten else lines[r]
        out.append(line if line.endswith(b"\n") else line + b"\n")
    return b"".join(out)


def _roles(shard: Shard, schema: pa.Schema | None, columns: Columns, mode: str) -> dict[str, str]:
    roles = resolve_columns(shard, schema, columns, frozenset({"text"}))
    if MODES[mode].rewrites_text and "." in roles["text"]:
        raise UsageError(
            f"{shard.uri}: --mode {mode} needs a top-level text column, not the struct field {roles['text']!r}"
        )
    return roles


def _write_outputs(shard: Shard, out: ExportDir, write_both) -> None:
    """Run ``write_both(shard_tmp, attributes_tmp)``: the attribute file is renamed into place first, then the shard."""
    try:
        write_atomic(
            out.output(shard.relpath),
            lambda shard_tmp: write_atomic(
                out.attributes(shard.relpath), lambda attributes_tmp: write_both(shard_tmp, attributes_tmp)
            ),
        )
    except (OSError, pa.ArrowException) as error:
        raise InputError(f"{shard.uri}: export failed while reading or writing ({error})") from error


def _finish(shard: Shard, out: ExportDir, counts: _Counts, started: float, **formats) -> dict:
    """Write the shard's marker (last, after both files) and return its stats."""
    stats = {
        "relpath": shard.relpath,
        "input": shard.uri,
        "fingerprint": shard.fingerprint(),
        "output": shard.relpath,
        "attributes": out.attributes(shard.relpath).relative_to(out.root).as_posix(),
        **vars(counts),
        **formats,
        "seconds": round(time.perf_counter() - started, 3),
    }
    out.commit_shard(shard.relpath, stats)
    return stats


def _transform(
    batch: pa.RecordBatch,
    tags: _BatchTags,
    lengths: np.ndarray,
    mode: str,
    placeholder: str,
    text_column: str,
    counts: _Counts,
) -> pa.RecordBatch:
    """The batch as the mode writes it (``lengths``: each row's text in code points); counts what went in and out."""
    counts.rows_in += batch.num_rows
    counts.characters_in += int(lengths.sum())
    counts.documents_flagged += int(tags.flagged_doc.sum())
    counts.passages_flagged += int(tags.flagged.sum())
    starts, ends = tags.passages["char_start"].to_numpy(), tags.passages["char_end"].to_numpy()
    counts.characters_flagged += int((ends - starts)[tags.flagged].sum())
    result, kept_chars = MODES[mode].transform(batch, tags, lengths, _Rewrite(placeholder, text_column), counts)
    counts.rows_out += result.num_rows
    counts.characters_out += kept_chars
    return result


@dataclass(frozen=True)
class _Rewrite:
    """What a mode may need besides the batch and its tags: the text left for a cut passage, the text column."""

    placeholder: str
    text_column: str


# A mode's transform: (batch, its tags, each row's text length in code points, _Rewrite, counts it may add to)
# -> (the batch as written, its characters of text).
Transform = Callable[[pa.RecordBatch, _BatchTags, np.ndarray, _Rewrite, _Counts], tuple[pa.RecordBatch, int]]


def _drop(
    batch: pa.RecordBatch, tags: _BatchTags, lengths: np.ndarray, rewrite: _Rewrite, counts: _Counts
) -> tuple[pa.RecordBatch, int]:
    """Leave out the documents holding a flagged passage."""
    return _rows(batch, lengths, ~tags.flagged_doc)


def _keep(
    batch: pa.RecordBatch, tags: _BatchTags, lengths: np.ndarray, rewrite: _Rewrite, counts: _Counts
) -> tuple[pa.RecordBatch, int]:
    """Keep only the documents holding a flagged passage."""
    return _rows(batch, lengths, tags.flagged_doc)


def _rows(batch: pa.RecordBatch, lengths: np.ndarray, keep: np.ndarray) -> tuple[pa.RecordBatch, int]:
    return batch.filter(pa.array(keep)), int(lengths[keep].sum())


def _redact_flagged(
    batch: pa.RecordBatch, tags: _BatchTags, lengths: np.ndarray, rewrite: _Rewrite, counts: _Counts
) -> tuple[pa.RecordBatch, int]:
    """Cut the flagged passages out of the text, leaving the placeholder in their place."""
    result, removed, spans = _redact(batch, tags.flagged_spans(), rewrite.placeholder, rewrite.text_column)
    counts.characters_redacted += removed
    counts.spans_redacted += spans
    return result, int(lengths.sum()) - removed + spans * len(rewrite.placeholder)


def _annotate_rows(
    batch: pa.RecordBatch, tags: _BatchTags, lengths: np.ndarray, rewrite: _Rewrite, counts: _Counts
) -> tuple[pa.RecordBatch, int]:
    """Keep every row and add the audit_* tag columns."""
    return _annotate(batch, tags), int(lengths.sum())


@dataclass(frozen=True)
class Mode:
    """An export mode: its transform, and what the other steps need to know of it."""

    transform: Transform
    rows_out: Callable[[dict], int]  # the rows it writes, from the export's totals (the reconciliation checks it)
    rewrites_text: bool = False  # edits the text: needs a top-level text column; JSON Lines lines get the new text
    adds_tags: bool = False  # appends the TAG_FIELDS columns (JSON Lines: keys), which must not exist already


def _all_rows(totals: dict) -> int:
    return totals["rows_in"]


# The export modes by name (the CLI's --mode choices): a new mode is one entry here.
MODES: dict[str, Mode] = {
    "drop": Mode(_drop, rows_out=lambda totals: totals["rows_in"] - totals["documents_flagged"]),
    "keep": Mode(_keep, rows_out=lambda totals: totals["documents_flagged"]),
    "redact": Mode(_redact_flagged, rows_out=_all_rows, rewrites_text=True),
    "annotate": Mode(_annotate_rows, rows_out=_all_rows, adds_tags=True),
}


def _redact(
    batch: pa.RecordBatch, spans: dict[int, list[tuple[int, int]]], placeholder: str, text_column: str
) -> tuple[pa.RecordBatch, int, int]:
    """Cut the spans out of the text column; returns the batch, the characters removed and the spans cut."""
    if not spans:
        return batch, 0, 0
    index = batch.schema.get_field_index(text_column)
    text = batch.column(index)
    binary = pa.types.is_binary(text.type) or pa.types.is_large_binary(text.type)
    rows = sorted(spans)
    new_values, removed = [], 0
    for row, value in zip(rows, text.take(pa.array(rows)).to_pylist(), strict=True):
        value = value.decode("utf-8", "replace") if binary else value
        if value is None or spans[row][-1][1] > len(value):
            raise InputError(
                f"row {row}: flagged span {spans[row][-1]} lies beyond its text "
                f"({0 if value is None else len(value)} characters); the shard does not match the scan"
            )
        pieces, position = [], 0
        for start, end in spans[row]:
            pieces += [value[position:start], placeholder]
            removed += end - start
            position = end
        cut = "".join(pieces) + value[position:]
        new_values.append(cut.encode("utf-8") if binary else cut)
    mask = np.zeros(batch.num_rows, dtype=bool)
    mask[rows] = True
    replaced = pc.replace_with_mask(text, pa.array(mask), pa.array(new_values, type=text.type))
    return batch.set_column(index, batch.schema.field(index), replaced), removed, sum(len(s) for s in spans.values())


# -- annotate ---------------------------------------------------------------------------------------------------

SPAN_TYPE = pa.struct(
    [
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("label", pa.string()),
        ("score", pa.float32()),
        ("cluster_id", pa.int64()),
        ("flagged", pa.bool_()),
    ]
)
TAG_FIELDS = [  # list items are named "element", as Parquet names them, so a read-back schema equals this one
    pa.field(f"{TAG_PREFIX}flagged", pa.bool_()),  # the document holds a passage flagged by this export's selection
    pa.field(
        f"{TAG_PREFIX}labels", pa.list_(pa.field("element", pa.string()))
    ),  # AI labels of its passages, in label order
    *(pa.field(f"{TAG_PREFIX}max_p_{label}", pa.float32()) for label in AI_LABELS),  # null: the gate skipped it
    pa.field(
        f"{TAG_PREFIX}spans", pa.list_(pa.field("element", SPAN_TYPE))
    ),  # its AI passages (code-point offsets), with their families
]


def _output_schema(schema: pa.Schema, mode: str) -> pa.Schema:
    if not MODES[mode].adds_tags:
        return schema
    taken = [f.name for f in TAG_FIELDS if f.name in schema.names]
    if taken:
        raise UsageError(f"the shards already have column(s) {', '.join(taken)}; --mode {mode} would overwrite them")
    return pa.schema([*schema, *TAG_FIELDS], metadata=schema.metadata)


def _annotate(batch: pa.RecordBatch, tags: _BatchTags) -> pa.RecordBatch:
    n = batch.num_rows
    passage_labels = tags.passages["label"].to_numpy(zero_copy_only=False)
    label_index = np.zeros(len(passage_labels), dtype=np.int64)
    for index, label in enumerate(AI_LABELS):
        label_index[passage_labels == label] = index
    present = np.zeros((n, len(AI_LABELS)), dtype=bool)
    present[tags.local, label_index] = True
    label_rows, label_cols = np.nonzero(present)
    label_offsets = np.concatenate([[0], np.cumsum(np.bincount(label_rows, minlength=n))]).astype(np.int32)
    labels = pa.ListArray.from_arrays(
        pa.array(label_offsets),
        pa.array(np.array(AI_LABELS)[label_cols].tolist(), pa.string()),
        type=TAG_FIELDS[1].type,
    )
    p = tags.passages
    spans = pa.StructArray.from_arrays(
        [
            p["char_start"].combine_chunks(),
            p["char_end"].combine_chunks(),
            p["label"].combine_chunks().cast(pa.string()),
            p["score"].combine_chunks(),
            p["cluster_id"].combine_chunks(),
            pa.array(tags.flagged),
        ],
        fields=list(SPAN_TYPE),
    )
    columns = [
        pa.array(tags.flagged_doc),
        labels,
        *(pa.array(tags.max_p[label], mask=np.isnan(tags.max_p[label])) for label in AI_LABELS),
        pa.ListArray.from_arrays(pa.array(tags.offsets()), spans, type=TAG_FIELDS[-1].type),
    ]
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *columns], schema=pa.schema([*batch.schema, *TAG_FIELDS], metadata=batch.schema.metadata)
    )


# -- dolma-style attributes -------------------------------------------------------------------------------------


def _attribute_lines(
    batch: pa.RecordBatch, tags: _BatchTags, lengths: np.ndarray, roles: dict[str, str], relpath: str, first_row: int
) -> str:
    """One JSON line per row: ``{"id", "row", "attributes": {name: [[start, end, score], ...]}}``."""
    n = batch.num_rows
    ids = read_column(batch, roles["id"]).to_pylist() if "id" in roles else [None] * n
    ids = [f"{relpath}:{first_row + k}" if i is None else str(i) for k, i in enumerate(ids)]
    lengths_list, flagged_doc = lengths.tolist(), tags.flagged_doc.tolist()
    max_p = {label: tags.max_p[label].tolist() for label in AI_LABELS}  # NaN: the gate passed the row over
    classified = ~np.isnan(tags.max_p[AI_LABELS[0]])
    classified[tags.local] = True
    passages = _passage_attributes(tags)
    lines = []
    for k, (doc_id, length) in enumerate(zip(ids, lengths_list, strict=True)):
        head = f'{{"id": {json.dumps(doc_id, ensure_ascii=False)}, "row": {first_row + k}, "attributes": '
        if not classified[k]:  # most rows: nothing but their length varies, so skip building a dict
            lines.append(f"{head}{_UNTAGGED[0]}[[0, {length}, 0.0]]{_UNTAGGED[1]}}}\n")
            continue
        attributes = {
            **(passages.get(k) or _no_passages()),
            f"{ATTRIBUTE_PREFIX}__document__flagged": [[0, length, 1.0 if flagged_doc[k] else 0.0]],
        }
        for label in AI_LABELS:
            score = max_p[label][k]
            attributes[f"{ATTRIBUTE_PREFIX}__document__max_p_{label}"] = (
                [] if score != score else [[0, length, round(score, 6)]]
            )
        lines.append(f"{head}{json.dumps(attributes, ensure_ascii=False)}}}\n")
    return "".join(lines)


def _passage_attributes(tags: _BatchTags) -> dict[int, dict[str, list]]:
    """Batch row -> its passage spans per label, and the flagged ones, as Dolma span attributes."""
    out: dict[int, dict[str, list]] = {}
    p = tags.passages
    columns = {
        name: p[name].to_pylist()
        for name in ("char_start", "char_end", "label", "score", *(f"p_{label}" for label in AI_LABELS))
    }
    for k, (row, flagged) in enumerate(zip(tags.local.tolist(), tags.flagged.tolist(), strict=True)):
        start, end, label = columns["char_start"][k], columns["char_end"][k], columns["label"][k]
        mine = out.get(row)
        if mine is None:
            mine = out[row] = _no_passages()
        mine[f"{ATTRIBUTE_PREFIX}__passage__{label}"].append([start, end, round(columns[f"p_{label}"][k], 6)])
        if flagged:
            mine[f"{ATTRIBUTE_PREFIX}__passage__flagged"].append([start, end, round(columns["score"][k], 6)])
    return out


def _no_passages() -> dict[str, list]:
    return {f"{ATTRIBUTE_PREFIX}__passage__{name}": [] for name in (*AI_LABELS, "flagged")}


# The attributes of a row the scan did not classify, split around its document span (only the length varies).
_UNTAGGED = json.dumps(
    {
        **_no_passages(),
        f"{ATTRIBUTE_PREFIX}__document__flagged": [[0, 0, 0.0]],
        **{f"{ATTRIBUTE_PREFIX}__document__max_p_{label}": [] for label in AI_LABELS},
    }
).split("[[0, 0, 0.0]]")


# -- writing -----------------------------------------------------------------------------------------------------


def _codec(metadata: pq.FileMetaData) -> str | dict[str, str]:
    """The input's codec as the writer names it: one name, or one per column when they differ."""
    if metadata.num_row_groups == 0:
        return "zstd"
    group = metadata.row_group(0)
    codecs = {
        group.column(j).path_in_schema: WRITER_CODECS.get(group.column(j).compression, "zstd")
        for j in range(group.num_columns)
    }
    distinct = set(codecs.values())
    return distinct.pop() if len(distinct) == 1 else codecs


def _row_bytes(metadata: pq.FileMetaData) -> float:
    """Average uncompressed bytes per row."""
    total = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
    return max(total / max(metadata.num_rows, 1), 1.0)


def _batch_rows(metadata: pq.FileMetaData) -> int:
    return max(1, int(BATCH_BYTES / _row_bytes(metadata)))


def _row_group_rows(metadata: pq.FileMetaData) -> int:
    """Rows per output row group: the input's largest row group, capped at ROW_GROUP_BYTES of uncompressed data."""
    largest = max((metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)), default=1)
    return max(1, min(largest, int(ROW_GROUP_BYTES / _row_bytes(metadata))))


class _RowGroups:
    """Buffers batches and writes them as row groups of ``rows`` rows (the last one shorter)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int) -> None:
        self.writer = writer
        self.rows = rows
        self.pending: list[pa.RecordBatch] = []
        self.buffered = 0
        self.written = 0

    def add(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.pending.append(batch)
            self.buffered += batch.num_rows
        while self.buffered >= self.rows:
            table = pa.Table.from_batches(self.pending)
            self._write(table.slice(0, self.rows))
            rest = table.slice(self.rows)
            self.pending, self.buffered = rest.to_batches(), rest.num_rows

    def close(self) -> int:
        """Write what is left; returns the number of row groups written."""
        if self.buffered:
            self._write(pa.Table.from_batches(self.pending))
        return self.written

    def _write(self, table: pa.Table) -> None:
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.written += 1


# -- the export manifest ---------------------------------------------------------------------------------------------


def _totals(results: list[dict]) -> dict:
    return {"shards": len(results), **{key: sum(r[key] for r in results) for key in vars(_Counts())}}


def _reconcile(totals: dict, summary: dict, selection: Selection, mode: str, placeholder: str, failed: bool) -> dict:
    """Checks that the export's counts agree with each other and with summary.json; ``ok`` when all hold."""
    checks = []

    def check(name: str, expected: int, actual: int) -> None:
        checks.append({"check": name, "expected": expected, "actual": actual, "ok": expected == actual})

    check(f"rows_out for --mode {mode}", MODES[mode].rows_out(totals), totals["rows_out"])
    if MODES[mode].rewrites_text:
        expected_chars = (
            totals["characters_in"] - totals["characters_redacted"] + totals["spans_redacted"] * len(placeholder)
        )
        check(
            "characters_out = characters_in - characters_redacted + placeholders",
            expected_chars,
            totals["characters_out"],
        )
        check(
            "characters_redacted = characters of flagged passages",
            totals["characters_flagged"],
            totals["characters_redacted"],
        )
    if not failed:  # summary.json counts every scanned shard; a skipped shard makes the totals incomparable
        corpus = summary["corpus"]
        check("rows_in = summary corpus.documents", corpus["documents"], totals["rows_in"])
        check("characters_in = summary corpus.characters", corpus["characters"], totals["characters_in"])
        if selection.min_score is None:
            blocks = [summary["labels"][label] for label in selection.labels]
            check(
                "passages_flagged = summary labels[L].passages",
                sum(b["passages"] for b in blocks),
                totals["passages_flagged"],
            )
            check(
                "characters_flagged = summary labels[L].characters",
                sum(b["characters"] for b in blocks),
                totals["characters_flagged"],
            )
            if len(blocks) == 1:  # the summary counts documents per label; a union of labels is not in it
                check(
                    "documents_flagged = summary labels[L].documents (distinct doc ids)",
                    blocks[0]["documents"],
                    totals["documents_flagged"],
                )
    return {"ok": all(c["ok"] for c in checks), "checks": checks}
