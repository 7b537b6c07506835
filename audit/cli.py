"""The command line: a thin layer over the Python API. Each subcommand parses into its typed config.

Exit codes (CONTRACT.md): 0 success; 1 the run finished but some inputs failed; 2 bad usage or unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .version import __version__
from .config import PRESETS, SAMPLE_TARGETS, ScanConfig, resolve_columns
from .errors import UsageError
from .executors import ENGINES


EXAMPLES = """examples:
  corpus-audit demo                                        audit the bundled sample corpus
  corpus-audit scan shards/ --out runs/web                 scan Parquet or JSON Lines shards, write a report
  corpus-audit export runs/web --out clean/ --mode drop    copy the corpus without the flagged documents
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 as argparse does, with one line instead of the usage block
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _scan_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("scan", help="scan Parquet or JSON Lines shards and write a run directory")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="shard files (*.parquet; *.jsonl or *.json, plain, .gz or .zst), directories (searched "
                        "recursively) or globs")
    p.add_argument("--out", required=True,
                   help="the run directory, outside every input folder (re-run the same command to resume)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="column layout of a known corpus (default fineweb); a preset column no shard has is a warning")
    for role in ("text", "id", "url", "date", "dump"):
        p.add_argument(f"--{role}-column", metavar="COLUMN",
                       help=f"the column holding the document {role} (a.b reads field b of a struct or JSON object)")
    p.add_argument("--token-column", dest="tokens_column", metavar="COLUMN", help="the column holding token counts")
    p.add_argument("--model", help="a fastText model file with its model.json (default: the shipped model)")
    p.add_argument(
        "--workers", type=int, default=1, help="units scanned in parallel (default 1; one per CPU core at most)"
    )
    p.add_argument(
        "--engine",
        choices=tuple(ENGINES),
        default="local",
        help="local processes on this machine (default), or a Ray cluster (pip install 'corpus-audit[ray]')",
    )
    p.add_argument(
        "--ray-address",
        help="HEAD_IP:PORT, or auto on a cluster node (default: $RAY_ADDRESS, else a private Ray on this machine "
        "with --workers CPUs)",
    )
    p.add_argument("--sample-rate", type=float, default=1.0, help="scan this share of documents, chosen by id hash")
    p.add_argument("--seed", type=int, default=0, help="seed of the document sample and the audit samples")
    p.add_argument(
        "--unit-mb", type=float, default=256, help="cut shards into units of about this many uncompressed MB"
    )
    _progress_flag(p)
    p.set_defaults(handler=_cmd_scan)


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress", action="store_true", default=None, help="show the progress bar even when stderr is not a terminal"
    )


def scan_config(args: argparse.Namespace) -> ScanConfig:
    if "://" in args.out:
        raise UsageError(
            f"--out {args.out}: the run directory must be a local or shared-filesystem path (inputs may be URIs)"
        )
    overrides = {role: getattr(args, f"{role}_column") for role in ("text", "id", "url", "date", "dump", "tokens")}
    columns, required = resolve_columns(args.preset, overrides)
    return ScanConfig(
        inputs=list(args.inputs),
        out=Path(args.out),
        columns=columns,
        required=required,
        model=args.model,
        workers=args.workers,
        engine=args.engine,
        ray_address=args.ray_address,
        sample_rate=args.sample_rate,
        seed=args.seed,
        progress=args.progress,
        unit_bytes=max(1, int(args.unit_mb * 2**20)),
    )


def _cmd_scan(args: argparse.Namespace) -> int:
    from .pipeline import scan

    outcome = scan(scan_config(args))
    if outcome.resumed_units:
        total = outcome.resumed_units + outcome.scanned_units
        rest = f"scanned the other {outcome.scanned_units}" if outcome.scanned_units else "nothing to do"
        print(
            f"resumed {outcome.run_dir}: {outcome.resumed_units} of {total} units were already scanned; {rest}",
            file=sys.stderr,
        )
    _print_summary(outcome.summary, outcome.run_dir)
    return outcome.exit_code


def _print_summary(summary: dict, run_dir: Path) -> None:
    from .rundir import RunDir

    for warning in summary.get("warnings", []):
        print(f"corpus-audit: warning: {warning}", file=sys.stderr)
    corpus = summary["corpus"]
    print(
        f"{corpus['documents']:,} documents in {corpus['shards']} shards ({corpus['shards_failed']} failed), "
        f"{corpus['passages']:,} passages, {corpus['passages_classified']:,} naming AI and classified"
    )
    checked = summary.get("checked")
    if checked:
        from .auditloop import checked_words

        print(f"checked by people ({checked['labelled']:,} labelled rows, {checked['source']}); these lead:")
        for label, units in checked["labels"].items():
            if label != "no_ai":
                print("\n".join(f"  {label:<14} {checked_words(entry)}" for entry in units.values()))
        print("the model's figures beside them:")
    for label, block in summary["labels"].items():
        print(
            f"  {label:<14} {block['documents']:>8,} documents  {block['passages']:>8,} passages;  "
            f"{headline_words(block.get('prevalence', {}).get('documents', {}))}"
        )
    for failure in summary["failures"]:
        print(f"FAILED {failure['input']}: {failure['error']}", file=sys.stderr)
    print(f"run directory: {run_dir}  (report: {RunDir(run_dir).report_html})")


def headline_words(head: dict) -> str:
    """A documents headline in plain words, naming its population: "4.1% of documents (95% interval 2.0-6.3%)",
    "at most 5.4% of documents; cannot be told from zero", or "too few documents to estimate (...)"."""
    population = head.get("population", "of documents")
    share, ci = head.get("estimate"), head.get("ci95")
    if share is not None and ci:
        return f"{share:.2%} {population} (95% interval {ci[0]:.2%}-{ci[1]:.2%})"
    if head.get("too_few"):
        return head.get("message", "too few documents to estimate")
    if ci:
        return f"at most {ci[1]:.2%} {population}; cannot be told from zero"
    return head.get("message", "no estimate")


def _report_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="(re)write RUN/report.html and RUN/report.md")
    p.add_argument("run", type=Path, help="a run directory written by scan or demo")
    p.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from .reporting import write_reports
    from .rundir import RunDir

    run = RunDir(args.run)
    if not run.summary.is_file():
        raise UsageError(f"{args.run} has no {run.summary.name}; run `corpus-audit scan ... --out {args.run}` first")
    html_path, md_path = write_reports(args.run)
    print(html_path)
    print(md_path)
    return 0


def _demo_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("demo", help="audit the bundled sample corpus (no input, no network)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"), help="the run directory (default runs/demo)")
    _progress_flag(p)
    p.set_defaults(handler=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .rundir import RunDir

    outcome = run_demo(args.out, progress=args.progress)
    _print_summary(outcome.summary, outcome.run_dir)
    print(f"report: {RunDir(outcome.run_dir).report_html.resolve()}")
    return outcome.exit_code


_TRAIN_INT_OPTIONS = {  # fastText's options, and the cross-validation that calibrates the model
    "dim": "size of the word vectors",
    "epoch": "passes over the training data",
    "word_ngrams": "longest word n-gram used as a feature",
    "minn": "shortest character n-gram (0: none)",
    "maxn": "longest character n-gram (0: none)",
    "bucket": "hash buckets for the n-gram features",
    "folds": "cross-validation folds whose held-out scores calibrate the probabilities",
    "seed": "seed of the fold split and of fastText",
    "real_weight": "how many times each real, read passage counts in the fit (written ones count once)",
}


def _train_parser(commands: argparse._SubParsersAction) -> None:
    from .training.fit import TrainOptions

    p = commands.add_parser("train", help="train a classifier from labelled JSON Lines")
    p.add_argument("data", nargs="+", metavar="DATA", help="JSON Lines: written passages {text,label} or label records")
    p.add_argument("--out", required=True, type=Path, help="model file (.bin, or .ftz quantised); model.json beside it")
    defaults = TrainOptions()
    for name, meaning in _TRAIN_INT_OPTIONS.items():
        default = getattr(defaults, name)
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default, help=f"{meaning} (default {default})")
    p.add_argument("--lr", type=float, default=defaults.lr, help=f"fastText's learning rate (default {defaults.lr})")
    p.add_argument(
        "--no-risk-words",
        dest="risk_words",
        action="store_false",
        help="calibrate on fastText's probabilities alone, without the risk-word features (audit.risk_words)",
    )
    p.set_defaults(handler=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from .training.fit import TrainOptions, train

    names = (*_TRAIN_INT_OPTIONS, "lr", "risk_words")
    info = train(args.data, args.out, TrainOptions(**{name: getattr(args, name) for name in names}))
    print(
        f"model: {args.out} (sha256 {info.get('model_sha256', '?')[:12]}), "
        f"trained on {sum(info['training']['counts'].values())} passages"
    )
    return 0


def _evaluate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("evaluate", help="per-label precision, recall and F1 of a model on labelled data")
    p.add_argument("data", nargs="+", metavar="DATA", help="JSON Lines: written passages {text,label} or label records")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--json", type=Path, help="also write the metrics as JSON to this file")
    p.add_argument("--record", metavar="NAME", help="store the figures in the model's model.json under evaluation.NAME")
    p.add_argument(
        "--agent-runs",
        action="store_true",
        help="also scan the shared data's dev-side agent runs whole and count flagged runs by the "
        "experimenters' behaviour tag (stored as evaluation.agent_runs with --record)",
    )
    p.set_defaults(handler=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .atomic import write_json_atomic
    from .tagger import load_tagger
    from .training.evaluate import agent_run_flags, evaluate, format_metrics, record_evaluation

    tagger = load_tagger(args.model)
    metrics = evaluate(args.data, tagger)
    print(format_metrics(metrics))
    if args.json:
        write_json_atomic(args.json, metrics.to_json())
    if args.record:
        record_evaluation(tagger.path, args.record, metrics)
    if args.agent_runs:
        runs = agent_run_flags(tagger)
        for behaviour, row in runs.items():
            print(f"agent runs {behaviour}: {row['flagged']} of {row['runs']} flagged misaligned_ai")
        if args.record:
            record_evaluation(tagger.path, "agent_runs", runs)
    return 0


def _classify_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("classify", help="classify JSON Lines texts (stdin or a file) with the model alone")
    p.add_argument("file", nargs="?", default="-", help="JSON Lines file, or - for stdin (default)")
    p.add_argument(
        "--text-field", default="text", metavar="FIELD", help="the field of each line holding the text (default text)"
    )
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.set_defaults(handler=_cmd_classify)


def _cmd_classify(args: argparse.Namespace) -> int:
    import contextlib
    import json

    from .predict import classify_lines

    with contextlib.ExitStack() as stack:
        if args.file == "-":
            lines = sys.stdin
        else:
            try:
                lines = stack.enter_context(open(args.file, encoding="utf-8"))
            except OSError as error:
                raise UsageError(f"cannot read {args.file}: {error.strerror}") from None
        for record in classify_lines(lines, args.model, args.text_field):
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def _export_parser(commands: argparse._SubParsersAction) -> None:
    from .exporter import MODES

    p = commands.add_parser(
        "export", help="write a filtered copy of the scanned shards (+ dolma-style attribute files)"
    )
    p.add_argument("run", type=Path, help="a finished run directory")
    p.add_argument("--out", required=True, type=Path, help="the export directory (re-run the same command to resume)")
    p.add_argument(
        "--mode",
        required=True,
        choices=tuple(MODES),
        help="drop or keep documents holding a flagged passage, redact the passages, or annotate every row",
    )
    p.add_argument(
        "--labels",
        action="append",
        metavar="LABEL[,LABEL]",
        help="labels that flag a passage (comma-separated or repeated; default misaligned_ai)",
    )
    p.add_argument("--min-score", type=float, help="flag only passages whose own label's probability is at least this")
    p.add_argument("--placeholder", default="", help="text left where --mode redact cuts a passage (default: nothing)")
    _progress_flag(p)
    p.set_defaults(handler=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from .exporter import export
    from .rundir import ExportDir

    labels = [label for value in (args.labels or ["misaligned_ai"]) for label in value.split(",")]
    outcome = export(args.run, args.out, args.mode, labels, args.min_score, args.placeholder, args.progress)
    totals = outcome.manifest["totals"]
    print(
        f"{totals['rows_in']:,} rows in, {totals['rows_out']:,} rows out in {totals['shards']} shards "
        f"({totals['documents_flagged']:,} documents flagged, {totals['characters_redacted']:,} characters redacted)"
    )
    for check in outcome.manifest["reconciliation"]["checks"]:
        if not check["ok"]:
            print(
                f"DOES NOT RECONCILE {check['check']}: expected {check['expected']}, got {check['actual']}",
                file=sys.stderr,
            )
    for failure in outcome.manifest["failures"]:
        print(f"FAILED {failure['input']}: {failure['error']}", file=sys.stderr)
    if outcome.exported_shards == 0:
        print("nothing to do: every shard was already exported", file=sys.stderr)
    print(f"export directory: {outcome.out}  (manifest: {ExportDir(outcome.out).manifest})")
    return outcome.exit_code


def _sample_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "sample", help="draw a stratified audit sample of passages and whole documents for people to label"
    )
    p.add_argument("run", type=Path, help="a finished run directory")
    p.add_argument("--n", type=int, required=True, help="how many rows (passages and whole documents) to draw")
    p.add_argument("--out", type=Path, required=True, help="JSON Lines file to write (fill in each line's label)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the draw (default 0; the same seed draws the same passages)"
    )
    p.add_argument(
        "--target",
        choices=tuple(SAMPLE_TARGETS),
        default="documents",
        help="the estimate the labels are allocated to make precise, beyond a floor per stratum: the share of "
        "documents (default; the scan's headline), of passages, or both",
    )
    p.set_defaults(handler=_cmd_sample)


def _cmd_sample(args: argparse.Namespace) -> int:
    from .auditloop import sample

    plan = sample(args.run, args.n, args.out, args.seed, args.target)
    for stratum in plan["strata"]:
        print(f"  {stratum['name']:<28} drew {stratum['drawn']:>5} of {stratum['population']:>10,}")
    print(
        f"{len(plan['rows'])} rows to label in {args.out} ({plan['drawn']['passage']} passages, "
        f"{plan['drawn']['document']} whole documents; beyond each stratum's floor, allocated to make the "
        f"{args.target} estimate precise); then run "
        f"`corpus-audit estimate {args.run} --labels {args.out}`"
    )
    return 0


def _estimate_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("estimate", help="prevalence from a labelled audit sample (writes RUN/estimate.json)")
    p.add_argument("run", type=Path, help="the run directory the sample was drawn from")
    p.add_argument(
        "--labels",
        type=Path,
        required=True,
        help="the labels so far: `label` writes RUN/labels.jsonl, or fill in `sample`'s file",
    )
    p.set_defaults(handler=_cmd_estimate)


def _cmd_estimate(args: argparse.Namespace) -> int:
    from .agreement import render as render_agreement
    from .auditloop import estimate, render

    from .reporting import write_reports
    from .rundir import RunDir

    result = estimate(args.run, args.labels)
    run = RunDir(args.run)
    print(render(result, json.loads(run.summary.read_text()) if run.summary.is_file() else None))
    print(render_agreement(result["agreement"]))
    html_path, _ = write_reports(args.run)
    print(f"written: {run.estimate}; the report now shows it: {html_path}")
    return 0


def _label_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("label", help="label the audit sample on a local page; feeds `estimate`")
    p.add_argument("run", type=Path, help="the run directory whose audit sample to label")
    p.add_argument("--n", type=int, default=400, help="sample size, when the run has no audit sample yet")
    p.add_argument("--labels", type=Path, help="the labels file (default RUN/labels.jsonl); answers go there at once")
    p.add_argument(
        "--labeller",
        help="your name in the labels file (default: your user name; `adjudicator` "
        "settles the rows labellers disagree on)",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    p.set_defaults(handler=_cmd_label)


def _cmd_label(args: argparse.Namespace) -> int:
    from .labelserver import open_session, serve

    session = open_session(args.run, args.n, args.labels, args.labeller)
    serve(session, args.port, open_browser=not args.no_browser)
    return 0


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _scan_parser,
    _report_parser,
    _demo_parser,
    _train_parser,
    _evaluate_parser,
    _classify_parser,
    _export_parser,
    _sample_parser,
    _estimate_parser,
    _label_parser,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="corpus-audit",
        description="Audit LLM pretraining corpora for text portraying AI as misaligned.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"corpus-audit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in PARSERS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except UsageError as error:
        print(f"corpus-audit: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("corpus-audit: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
