"""The Markdown report: the headline and the main tables, for pasting into an issue or a pull request.

Corpus strings are untrusted here too: prose is HTML-escaped and its Markdown punctuation backslash-escaped;
domains and URLs go into code spans, so a renderer neither links nor interprets them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from typing import Any

from audit.estimators import Estimate
from audit.labels import AI_LABELS
from audit.rundir import ESTIMATE_FILE

from . import fmt, tables
from .rundata import RunData

EXEMPLAR_CHARS = 200
# Characters that could start emphasis, code, links, images or table cells inside one line of text (it never
# begins a line, so list and heading markers need no escape).
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#!|~])")


def md_text(value: Any, limit: int | None = None) -> str:
    """One line of inert text: whitespace collapsed, HTML and Markdown punctuation escaped."""
    text = " ".join(str(value).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))


def md_code(value: Any) -> str:
    """A code span that holds any string, even one with backticks or table pipes."""
    text = " ".join(str(value).split()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    align = ["---:" if i in numeric else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _estimate(prev: tables.Prevalence | None) -> tuple[str, str]:
    if prev is None:
        return "–", ""
    if prev.headline is None:
        return prev.verdict, f"at most {fmt.pct(prev.upper)}" if prev.upper is not None else ""
    return fmt.pct_interval(prev.headline.estimate, *prev.headline.ci95)


def _headline(rows: list[tables.LabelHeadline]) -> list[str]:
    units = [u for u in ("documents", "characters") if any(r.unit(u) for r in rows)]
    headers = ["label", "documents", "passages"] + [h for u in units for h in (f"share of {u}", "95% interval")]
    body = [[f"`{r.label}`", fmt.count(r.documents), fmt.count(r.passages),
             *[c for u in units for c in _estimate(r.unit(u))]] for r in rows]
    if not units:
        headers.append("raw flagged share of documents")
        body = [row + [fmt.pct(r.raw_share)] for row, r in zip(body, rows, strict=True)]
    out = ["## Headline", "", _table(headers, body, numeric=tuple(range(1, len(headers)))), ""]
    ratio, explanation = tables.misaligned_to_aligned(rows)
    out.append(f"Misaligned : aligned AI portrayals **{ratio}** ({explanation})." if ratio else explanation)
    if not units:
        out += ["", "This run has no prevalence estimates; the shares above are raw classifier counts."]
    methods = sorted({p.method for r in rows for p in r.prevalence if p.method})
    if methods:
        out += ["", "Headline estimator: " + ", ".join(md_code(m) for m in methods)]
    notes = [f"`{r.label}`, {p.unit}: {md_text(p.message)}" for r in rows for p in r.prevalence if p.message]
    return out + ([""] + [f"- {n}" for n in notes] if notes else [])


def _audited(run: RunData) -> list[str]:
    found = tables.audited(run)
    if found is None:
        return []
    labelled, rows = found

    def cells(e: Estimate | None) -> tuple[str, str]:
        return fmt.pct_interval(e.estimate, *e.ci95) if e else ("–", "")

    return ["## Checked by people", "",
            f"{fmt.count(labelled)} sampled rows labelled by people (`{ESTIMATE_FILE}`). Labels beat the model: these "
            "figures lead, and the model's own estimates follow.", "",
            _table(["label", "population", "stratified", "95% interval", "PPI", "95% interval"],
                   [[f"`{r.label}`", r.population_words, *cells(r.stratified), *cells(r.ppi)]
                    for r in rows], numeric=(2, 3, 4, 5)), ""]


def _concentration(rows: list[tables.LabelHeadline], concs: list[tables.Concentration]) -> list[str]:
    documents = {r.label: r.documents for r in rows}
    summary = []
    for c in concs:
        top = c.top_domains[0] if c.top_domains else {}
        summary.append([f"`{c.label}`", fmt.count(documents.get(c.label)),
                        md_code(top["domain"]) if top else "–", fmt.pct(top.get("share"), 1),
                        f"{c.gini:.2f}" if c.gini is not None else "–", fmt.pct(c.near_duplicate_share, 1)])
    out = ["## Where it concentrates", "",
           _table(["label", "documents", "top domain", "its share", "Gini (domains)", "near-duplicate share"],
                  summary, numeric=(1, 3, 4, 5))]
    for c in concs:
        if c.top_domains:
            out += ["", f"### `{c.label}`: top domains", "",
                    _table(["domain", "documents", "share"],
                           [[md_code(d["domain"]), fmt.count(d.get("documents")), fmt.pct(d.get("share"), 1)]
                            for d in c.top_domains[:10]], numeric=(1, 2))]
        if c.families:
            out += ["", f"### `{c.label}`: largest near-duplicate families", "",
                    _table(["family", "passages", "documents", "domains", "exemplar"],
                           [[str(f.cluster_id), fmt.count(f.passages), fmt.count(f.documents), fmt.count(f.domains),
                             md_text(f.exemplar.text, EXEMPLAR_CHARS) if f.exemplar else "–"]
                            for f in c.families], numeric=(1, 2, 3))]
    return out


def _run(run: RunData) -> list[str]:
    model = run.manifest.get("model") if isinstance(run.manifest.get("model"), dict) else {}
    sha = model.get("sha256")
    seconds = tables.run_seconds(run)
    failures = [f for f in run.summary.get("failures") or [] if isinstance(f, dict)]
    out = ["## Run details", "",
           f"- inputs: {', '.join(md_code(i) for i in run.manifest.get('inputs') or []) or '–'}",
           f"- shards: {len(run.manifest.get('shards') or [])}",
           f"- model sha256: {md_code(sha) if sha else '–'}",
           f"- duration: {fmt.duration(seconds)}",
           f"- failures: {len(failures)}"]
    out += [f"  - {md_code(f.get('input', '?'))}: {md_text(f.get('error', '?'))}" for f in failures]
    warnings = run.summary.get("warnings") or []
    out += [f"- warnings: {len(warnings)}"] + [f"  - {md_text(w)}" for w in warnings]
    return out


def render(run: RunData) -> str:
    corpus = run.summary.get("corpus") or {}
    rows = tables.headlines(run.summary)
    concs = [tables.concentration(run, label) for label in AI_LABELS]
    lines = [
        "# corpus-audit report",
        "",
        f"{fmt.count(corpus.get('documents'))} documents in {fmt.count(corpus.get('shards'))} shards, "
        f"{fmt.big(corpus.get('characters'))} characters, {fmt.count(corpus.get('passages'))} passages, "
        f"{fmt.count(corpus.get('passages_classified'))} of them naming AI and classified. "
        f"Run: {md_code(run.run_dir.resolve())}",
        "",
    ]
    lines += _audited(run) + _headline(rows) + [""] + _concentration(rows, concs) + [""] + _run(run)
    return "\n".join(lines) + "\n"
