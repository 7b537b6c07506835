"""The HTML report: one self-contained page (inline CSS, plots as data: URIs, no script, no network).

Corpus text is untrusted: it only ever reaches the page through `markup.esc`, URLs are printed as text and
never as links, and a Content-Security-Policy forbids scripts and fetches should anything slip through.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import polars as pl

from audit import gate
from audit.estimators import Estimate
from audit.labels import AI_LABELS
from audit.rundir import ESTIMATE_FILE

from . import fmt, plots, tables
from .markup import Html, el, esc, join, table
from .rundata import RunData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
PASSAGE_CHARS = 900
EXEMPLAR_CHARS = 420

LABEL_NOTES = {
    "misaligned_ai": "AI portrayed as hostile, deceptive, power-seeking or resisting human control",
    "aligned_ai": "AI behaving well where it matters: honest, accepting oversight, refusing harm",
    "neutral_ai": "AI present but neither: news, research, products, how-to, human misuse",
    "no_ai": "AI is not a subject of the passage",
}


def _chip(label: str) -> Html:
    return el("span", label, class_=f"chip {label}")


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _highlight(text: str) -> Html:
    """The text, escaped, with the AI terms the gate matched in <mark> (each extended to the end of its word)."""
    found = {m for m in pl.Series([text]).str.extract_all(gate.PATTERN)[0] if m}
    if not found:
        return esc(text)
    terms = re.compile("|".join(re.escape(t) + r"\w*" for t in sorted(found, key=len, reverse=True)))
    out, end = Html(""), 0
    for match in terms.finditer(text):
        out += esc(text[end:match.start()]) + el("mark", match.group())
        end = match.end()
    return out + esc(text[end:])


def _figure(uri: str | None, alt: str, caption: Any = "") -> Html:
    if uri is None:
        return Html("")
    return el(
        "figure", Html(f'<img src="{esc(uri)}" alt="{esc(alt)}">') + (el("figcaption", caption) if caption else "")
    )


def _estimate_cell(prev: tables.Prevalence | None) -> Html:
    """A table cell's content: the estimate over its 95% interval, or 'not detectable' over its upper bound."""
    if prev is None:
        return Html("–")
    if prev.headline is None:
        bound = f"at most {fmt.pct(prev.upper)}" if prev.upper is not None else ""
        return el("span", prev.verdict, class_="muted", title=prev.message) + el("span", bound, class_="ci")
    estimate, interval = fmt.pct_interval(prev.headline.estimate, *prev.headline.ci95)
    return el("span", estimate) + el("span", interval, class_="ci")


# --- sections -------------------------------------------------------------------------------------------


def _header(run: RunData) -> Html:
    corpus = run.summary.get("corpus") or {}
    facts = [
        fmt.counted(corpus.get("documents"), "document"),
        fmt.counted(corpus.get("shards"), "shard"),
        f"{fmt.big(corpus.get('characters'))} characters",
        f"{fmt.count(corpus.get('passages'))} passages, "
        f"{fmt.count(corpus.get('passages_classified'))} of them naming AI and classified",
    ]
    failed = corpus.get("shards_failed") or len(run.summary.get("failures") or [])
    warning = (
        el("p", f"{failed} input(s) failed and are not counted; see Run details.", class_="warning")
        if failed
        else Html("")
    )
    warning += join(el("p", f"Warning: {w}", class_="warning") for w in run.summary.get("warnings") or [])
    return el(
        "header",
        el("p", "corpus-audit report", class_="eyebrow")
        + el("h1", "How AI is portrayed in this corpus")
        + el("p", join(facts, " · "), class_="facts")
        + el("p", el("code", str(run.run_dir.resolve())), class_="run-path")
        + warning,
    )


def _nav(sections: list[tuple[str, str]]) -> Html:
    return el(
        "nav",
        el("ol", join(el("li", Html(f'<a href="#{anchor}">{esc(title)}</a>')) for anchor, title in sections)),
        aria_label="Sections",
    )


def _headline_card(row: tables.LabelHeadline) -> Html:
    prev = row.unit("documents") or (row.prevalence[0] if row.prevalence else None)
    if prev is None:
        unit = "raw share of documents"
        figure = el("p", fmt.pct(row.raw_share), class_="big")
    elif prev.headline is None:
        unit = prev.population or f"of {prev.unit}"
        bound = f"95% upper bound {fmt.pct(prev.upper)} {unit}" if prev.upper is not None else ""
        figure = (
            el("p", prev.verdict, class_="big muted")
            + el("p", bound, class_="interval")
            + el("p", prev.message, class_="note")
        )
    else:
        unit = prev.population or f"of {prev.unit}"
        estimate, interval = fmt.pct_interval(prev.headline.estimate, *prev.headline.ci95)
        figure = el("p", estimate, class_="big") + el("p", f"95% interval {interval}", class_="interval")
    counts = f"{fmt.counted(row.documents, 'document')} · {fmt.counted(row.passages, 'passage')}"
    return el(
        "div",
        el("h3", _chip(row.label))
        + el("p", unit, class_="unit")
        + figure
        + el("p", counts, class_="counts")
        + el("p", LABEL_NOTES[row.label], class_="note"),
        class_=f"card {row.label}",
    )


def _ratio(rows: list[tables.LabelHeadline]) -> Html:
    ratio, explanation = tables.misaligned_to_aligned(rows)
    if ratio is None:
        return el("p", explanation, class_="ratio")
    return el(
        "p", Html("Misaligned : aligned AI portrayals ") + el("strong", ratio) + f" ({explanation})", class_="ratio"
    )


def _prevalence_table(rows: list[tables.LabelHeadline]) -> Html:
    units = [u for u in tables.UNIT_ORDER if any(r.unit(u) for r in rows)]
    units += [u for r in rows for p in r.prevalence if (u := p.unit) not in units]
    if not units:
        return Html("")
    body = [[_chip(r.label)] + [_estimate_cell(r.unit(u)) for u in units] for r in rows]
    methods = sorted({p.method for r in rows for p in r.prevalence if p.method})
    notes = sorted({p.message for r in rows for p in r.prevalence if p.message and p.headline is not None})
    notes += sorted({f"{p.unit}: {p.population}" for r in rows for p in r.prevalence if p.population})
    others = [(r.label, p.unit, e) for r in rows for p in r.prevalence for e in p.others]
    return (
        el("h3", "Prevalence by unit")
        + el("p", "Each cell: the estimate, and below it the 95% interval.", class_="muted")
        + table(["label", *units], body, numeric=tuple(range(1, len(units) + 1)), class_="data estimates")
        + (
            el("p", "Headline estimators:", class_="muted")
            + el("ul", join(el("li", el("code", m)) for m in methods), class_="methods")
            if methods
            else Html("")
        )
        + join(el("p", n, class_="note-box") for n in notes)
        + (
            el(
                "details",
                el("summary", f"All estimators ({len(others)})")
                + table(
                    ["label", "unit", "estimator", "estimate", "95% interval"],
                    [
                        (_chip(label), unit, e.method, *fmt.pct_interval(e.estimate, *e.ci95))
                        for label, unit, e in others
                    ],
                    numeric=(3, 4),
                ),
            )
            if others
            else Html("")
        )
    )


def _audited(run: RunData) -> Html:
    found = tables.audited(run)
    if found is None:
        return Html("")
    labelled, rows = found

    def cells(e: Estimate | None) -> tuple[Any, Any]:
        return fmt.pct_interval(e.estimate, *e.ci95) if e else ("–", "")

    notes = any(r.note for r in rows)
    body = [
        (_chip(r.label), r.population_words, *cells(r.stratified), *cells(r.ppi)) + ((r.note or "",) if notes else ())
        for r in rows
    ]
    return (
        el("h3", "Checked by people")
        + el(
            "p",
            f"{fmt.count(labelled)} sampled rows labelled by people ({ESTIMATE_FILE}). Labels beat the "
            "model: these figures lead, and the model's own estimates follow below them. The design-based "
            "stratified estimate needs no model; PPI corrects the classifier's scores with the labels.",
        )
        + table(
            ["label", "population", "stratified", "95% interval", "PPI", "95% interval"] + (["note"] if notes else []),
            body,
            numeric=(2, 3, 4, 5),
        )
    )


def _headline(run: RunData, rows: list[tables.LabelHeadline]) -> Html:
    cards = el("div", join(_headline_card(r) for r in rows), class_="cards")
    raw = (
        el(
            "p",
            "This run's summary has no prevalence estimates, so the cards show the share of documents the "
            "classifier flagged, not corrected for its errors.",
            class_="note-box",
        )
        if not any(r.prevalence for r in rows)
        else Html("")
    )
    return el(
        "section",
        el("h2", "Headline")
        + _audited(run)
        + cards
        + raw
        + _ratio(rows)
        + _figure(
            plots.prevalence(rows, "documents"),
            "Prevalence of each AI label with 95% intervals",
            "Share of documents holding at least one passage of each label, with 95% intervals.",
        )
        + _prevalence_table(rows),
        id="headline",
    )


def _family(family: tables.Family) -> Html:
    stats = [
        fmt.counted(family.passages, "passage"),
        fmt.counted(family.documents, "document"),
        fmt.counted(family.domains, "domain"),
    ]
    if family.first_date or family.last_date:
        stats.append(f"{(family.first_date or '?')[:10]} → {(family.last_date or '?')[:10]}")
    if len(family.mix) > 1:
        stats.append(", ".join(f"{n} {label}" for label, n in family.mix.items()))
    meta = el("strong", f"family {family.cluster_id}") + join(el("span", s) for s in stats)
    body = Html("")
    if family.exemplar is not None:
        ex = family.exemplar
        body = el("blockquote", _highlight(_truncate(ex.text, EXEMPLAR_CHARS))) + el(
            "p", el("span", ex.url or ex.domain, class_="url") + f" · score {ex.score:.3f}", class_="source"
        )
    if len(family.top_domains) > 1:
        body += el("p", "top domains: " + ", ".join(family.top_domains[:5]), class_="source")
    return el("li", el("p", meta, class_="meta") + body, class_="family")


def _concentration_label(conc: tables.Concentration, documents: int | None) -> Html:
    if not documents:
        return el(
            "div",
            el("h3", _chip(conc.label)) + el("p", "No documents with this label.", class_="muted"),
            class_="label-block",
        )
    domain_rows = [
        (d["domain"], fmt.count(d.get("documents")), fmt.pct(d.get("share"), 1)) for d in conc.top_domains[:10]
    ]
    domains = (
        table(["domain", "documents", "share"], domain_rows, numeric=(1, 2))
        if domain_rows
        else el("p", "No domains recorded.", class_="muted")
    )
    families = (
        el("ol", join(_family(f) for f in conc.families), class_="families")
        if conc.families
        else el("p", "No near-duplicate families recorded.", class_="muted")
    )
    facts = [fmt.counted(documents, "document")]
    if conc.gini is not None:
        facts.append(f"Gini over domains {conc.gini:.2f}")
    if conc.near_duplicate_share is not None:
        facts.append(f"{fmt.pct(conc.near_duplicate_share, 1)} of passages in a family of two or more")
    return el(
        "div",
        el("h3", _chip(conc.label))
        + el("p", " · ".join(facts), class_="facts")
        + el(
            "div",
            el("div", domains) + _figure(plots.top_domains(conc), f"Top domains for {conc.label}"),
            class_="split",
        )
        + el("h4", "Largest near-duplicate families")
        + families,
        class_="label-block",
    )


def _reading(conc: tables.Concentration) -> Html:
    """One sentence per label that says how concentrated it is, in words."""
    parts = []
    if conc.top_domains:
        top = conc.top_domains[0]
        parts.append(f"the top domain holds {fmt.pct(top.get('share'), 1)} of its documents")
        if len(conc.top_domains) >= 3:
            three = sum(d.get("share") or 0 for d in conc.top_domains[:3])
            parts.append(f"the top three {fmt.pct(three, 1)}")
    if conc.near_duplicate_share is not None:
        parts.append(f"{fmt.pct(conc.near_duplicate_share, 1)} of its passages have a near-duplicate")
    if not parts:
        return Html("")
    return el("li", _chip(conc.label) + " " + "; ".join(parts) + ".")


def _concentration(rows: list[tables.LabelHeadline], concs: list[tables.Concentration]) -> Html:
    documents = {r.label: r.documents for r in rows}
    summary_rows = []
    for c in concs:
        top = c.top_domains[0] if c.top_domains else {}
        summary_rows.append(
            (
                _chip(c.label),
                fmt.count(documents.get(c.label)),
                top.get("domain", "–"),
                fmt.pct(top.get("share"), 1),
                f"{c.gini:.2f}" if c.gini is not None else "–",
                fmt.pct(c.near_duplicate_share, 1),
            )
        )
    explanation = (
        el("p", "Is it one story copied many times, a handful of sites, or spread thin?")
        + el("ul", join(_reading(c) for c in concs if documents.get(c.label)), class_="readings")
        + el(
            "p",
            "The Lorenz curve sorts domains from fewest to most documents. The further it sags "
            "below the diagonal, the more a few domains dominate; the Gini coefficient is twice "
            "the area between them (0: spread evenly, near 1: a few domains hold almost all).",
            class_="muted",
        )
    )
    lorenz = plots.lorenz_curves(concs)
    return el(
        "section",
        el("h2", "Where it concentrates")
        + table(
            ["label", "documents", "top domain", "its share", "Gini (domains)", "near-duplicate share"],
            summary_rows,
            numeric=(1, 3, 4, 5),
        )
        + el(
            "div",
            el("div", explanation) + _figure(lorenz, "Lorenz curves of documents over domains"),
            class_="split lorenz",
        )
        + join(_concentration_label(c, documents.get(c.label)) for c in concs),
        id="concentration",
    )


def _time(run: RunData) -> Html:
    parts = Html("")
    dumps = tables.by_dump(run.summary)
    if any(d["dump"] for d in dumps):
        rows = [
            (
                d["dump"] or "(no dump)",
                fmt.count(d["documents"]),
                *[fmt.count(d[label]) for label in AI_LABELS],
                fmt.pct(d["misaligned_ai"] / d["documents"]) if d["documents"] else "–",
            )
            for d in dumps
        ]
        parts += (
            el("h3", "By dump")
            + table(["dump", "documents scanned", *AI_LABELS, "misaligned share (raw)"], rows, numeric=(1, 2, 3, 4, 5))
            + el(
                "p",
                "Documents holding a passage of each label, as the classifier counted them (not adjusted).",
                class_="muted",
            )
        )
    period = tables.by_period(run)
    if period is not None:
        frame, granularity = period
        parts += el("h3", f"By {granularity}") + _figure(
            plots.by_period(frame, granularity),
            f"Flagged documents per {granularity}",
            f"Documents holding a passage of each label, per {granularity} of the document's date. Counts, not "
            "shares: the scan does not record how many documents each period holds.",
        )
    if not parts:
        return Html("")
    return el("section", el("h2", "By dump and date") + parts, id="time")


def _scores(run: RunData) -> Html:
    counts = run.score_histogram()
    if counts is None:
        return Html("")
    threshold = run.decision_threshold()
    total = sum(counts)
    cut = plots.first_bin_at_or_above(len(counts), threshold if threshold is not None else 0.5)
    high = sum(counts[cut:])
    line = (
        f"the dashed line is the scan's decision threshold, {threshold:.2f}"
        if threshold is not None
        else "the dashed line is at 0.5: the scan's decision threshold is unknown (the model.json of its model is gone "
        "or describes another model)"
    )
    return el(
        "section",
        el("h2", "Score distribution")
        + el(
            "p",
            f"p_misaligned_ai over all {fmt.count(total)} classified passages; {line}; {fmt.count(high)} "
            f"({fmt.pct(high / total) if total else '–'}) fall in the bins from it up (red).",
        )
        + _figure(plots.score_histogram(counts, threshold), "Histogram of p_misaligned_ai"),
        id="scores",
    )


def _passage(p: tables.Passage) -> Html:
    meta = join(
        [el("span", f"score {p.score:.3f}", class_="score"), el("span", p.domain, class_="domain")]
        + ([el("span", p.date[:10])] if p.date else [])
        + ([el("span", f"family {p.cluster_id}")] if p.cluster_id is not None else []),
        " ",
    )
    return el(
        "li",
        el("p", meta, class_="meta")
        + el("blockquote", _highlight(_truncate(p.text, PASSAGE_CHARS)))
        + el("p", el("span", p.url, class_="url"), class_="source"),
        class_="passage",
    )


def _examples(run: RunData) -> Html:
    blocks = Html("")
    for label in AI_LABELS:
        found = tables.examples(run, label)
        blocks += el("h3", _chip(label)) + (
            el("ol", join(_passage(p) for p in found), class_="passages")
            if found
            else el("p", "No passages with this label.", class_="muted")
        )
    return el(
        "section",
        el("h2", "Example passages")
        + el(
            "p",
            Html("The highest-scoring passages of each label, one per near-duplicate family; ")
            + el("mark", "marked")
            + " are the AI terms the gate matched. Text and URLs come from the corpus "
            "and are shown as plain text.",
            class_="muted",
        )
        + blocks,
        id="examples",
    )


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    return "–" if value is None else str(value)


def _run_details(run: RunData) -> Html:
    manifest, corpus = run.manifest, run.summary.get("corpus") or {}
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    seconds = tables.run_seconds(run)
    facts: list[tuple[str, Any]] = [
        ("run directory", el("code", str(run.run_dir.resolve()))),
        ("inputs", join((el("code", i) for i in manifest.get("inputs") or []), " ") or "–"),
        (
            "model",
            el("code", _value(model.get("path"))) + (f" (version {model['version']})" if model.get("version") else ""),
        ),
        ("model sha256", el("code", _value(model.get("sha256")))),
        ("corpus-audit", _value(manifest.get("tool_version"))),
        (
            "duration",
            fmt.duration(seconds)
            + (" (the last invocation; a resumed scan counts only its own work)" if seconds is not None else ""),
        ),
    ]
    scanned, read = manifest.get("documents_scanned"), manifest.get("bytes_read")
    if seconds and scanned:
        rate = f"{fmt.count(scanned / seconds)} documents/s"
        if read:
            rate += f" · {read / seconds / 1e6:.1f} MB/s read"
        facts.append(("throughput", rate))
    if (unit_seconds := run.unit_seconds()) is not None:
        facts.append(("time in units", f"{fmt.duration(unit_seconds)} summed over {len(run.units)} units"))
    if manifest and manifest.get("finished") is False:
        facts.append(("status", el("strong", "unfinished: this report covers the units completed so far")))
    details = el("dl", join(el("dt", k) + el("dd", v) for k, v in facts), class_="facts-list")
    shards = [s for s in manifest.get("shards") or [] if isinstance(s, dict)]
    shard_rows = [(s.get("relpath") or s.get("path", "?"), fmt.count(s.get("size"))) for s in shards]
    options = manifest.get("options") if isinstance(manifest.get("options"), dict) else {}
    failures = [f for f in run.summary.get("failures") or [] if isinstance(f, dict)]
    return el(
        "section",
        el("h2", "Run details")
        + details
        + el("h3", f"Shards ({len(shards)}; {fmt.count(corpus.get('documents'))} documents)")
        + (
            table(["shard", "bytes"], shard_rows, numeric=(1,), class_="data narrow")
            if shards
            else el("p", "The manifest lists no shards.", class_="muted")
        )
        + el("h3", "Options")
        + (
            table(["option", "value"], [(k, _value(v)) for k, v in options.items()], class_="data narrow")
            if options
            else el("p", "No options recorded.", class_="muted")
        )
        + el("h3", f"Failures ({len(failures)})")
        + (
            table(
                ["input", "unit", "error"],
                [(f.get("input", "?"), f.get("unit") or "–", f.get("error", "?")) for f in failures],
                class_="data failures",
            )
            if failures
            else el("p", "None: every input was read.", class_="muted")
        ),
        id="run",
    )


def render(run: RunData) -> str:
    """The whole page as a string."""
    rows = tables.headlines(run.summary)
    concs = [tables.concentration(run, label) for label in AI_LABELS]
    sections = [
        ("headline", "Headline"),
        ("concentration", "Where it concentrates"),
        ("time", "By dump and date"),
        ("scores", "Score distribution"),
        ("examples", "Example passages"),
        ("run", "Run details"),
    ]
    bodies = {
        "headline": _headline(run, rows),
        "concentration": _concentration(rows, concs),
        "time": _time(run),
        "scores": _scores(run),
        "examples": _examples(run),
        "run": _run_details(run),
    }
    present = [(anchor, title) for anchor, title in sections if bodies[anchor]]
    css = resources.files("audit.report_assets").joinpath("style.css").read_text(encoding="utf-8")
    main = el(
        "main",
        _header(run)
        + _nav(present)
        + join(bodies[a] for a, _ in present)
        + el(
            "footer",
            "Written by corpus-audit. Corpus text and URLs are shown as escaped plain text; "
            "this page loads nothing and runs no script.",
        ),
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>corpus-audit report: {esc(run.run_dir.resolve().name)}</title>\n"
        f"<style>\n{css}</style>\n</head>\n<body>\n{main}\n</body>\n</html>\n"
    )
