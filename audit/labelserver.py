"""`corpus-audit label`: a local, keyboard-first page for labelling the audit sample, tied to the estimate.

The server (standard library http.server) listens on 127.0.0.1 only. Every path starts with a random token
(`http://127.0.0.1:PORT/TOKEN/`); any other request gets 403. The page is three static files from
audit/labelpage/ under a strict Content-Security-Policy (nothing from the network, no inline script), and it
builds its DOM with textContent only, so corpus text and URLs stay plain text.

Each answer rewrites the labels file atomically (write-then-rename) before the page hears back, so stopping at
any moment loses nothing and never leaves a half-written file. The file is what `estimate` reads: one line per
answer with `doc_id`, `passage_index`, `label`, `labeller` and `time`. Items come in an interleaved order (the
first item of every stratum, then the second of each, ...) so the labels so far are a uniform sample of each
stratum and "estimate now" gives an honest interval at any point. A labeller resumes at their first unanswered
item; the labeller `adjudicator` is shown only the rows other labellers disagree on (see agreement.py).
"""

from __future__ import annotations

import fcntl
import getpass
import hmac
import importlib.resources
import json
import os
import re
import secrets
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, UTC
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from . import auditloop
from .agreement import ADJUDICATOR, Answer, disputed_rows, read_answers, row_keys
from .atomic import write_text_atomic
from .domains import registered_domain
from .errors import UsageError
from .labels import LABELS
from .rundir import RunDir

HOST = "127.0.0.1"
CONTEXT_CHARS = 1500  # document text shown on each side of the passage
IDLE_SECONDS = 30 * 60
MAX_BODY = 4096  # an answer is a few dozen bytes
PAGE_FILES = {"": ("index.html", "text/html"), "app.js": ("app.js", "text/javascript"),
              "style.css": ("style.css", "text/css")}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


# ------------------------------------------------------------------------------------------- the session


@dataclass
class Session:
    """The sample, the answers in the labels file, and where this labeller stands. Every method reads the file
    afresh under a lock and an answer rewrites it before returning."""

    run: Path
    labels: Path
    labeller: str
    plan: dict
    rows: list[dict]  # the sample file's rows, in plan order (text, url, shard, row, offsets, model label)
    records: list[dict] = field(default_factory=list)  # the labels file as last read, one dict a line, in order
    skipped: set[int] = field(default_factory=set)
    focus: int | None = None  # the row `undo` went back to
    documents: dict[tuple[str | None, int], str | None] = field(default_factory=dict)  # (shard, row) -> text
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.index = row_keys(self.plan)
        self.order = interleaved(self.plan["rows"])
        self.guide = guide_lines()
        if self.labels.is_file():
            read_answers(self.labels, self.plan)  # refuse a file with problems before writing to it

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold this session's lock and an advisory lock on the labels file's folder, and read the file afresh:
        another labeller's server may write the same file, and neither may overwrite the other's answers."""
        with self.lock:
            self.labels.parent.mkdir(parents=True, exist_ok=True)
            folder = os.open(self.labels.parent, os.O_RDONLY)
            try:
                fcntl.flock(folder, fcntl.LOCK_EX)
                text = self.labels.read_text(encoding="utf-8") if self.labels.is_file() else ""
                self.records = [json.loads(line) for line in text.splitlines() if line.strip()]
                yield
            finally:
                os.close(folder)  # closing releases the flock

    # -- what this labeller has answered, and what comes next

    def _row(self, record: dict) -> int:
        return self.index[record["doc_id"], record["passage_index"]]

    def _mine(self) -> dict[int, str]:
        return {self._row(r): r["label"] for r in self.records if r.get("label") and r.get("labeller") == self.labeller}

    def _answers(self) -> list[Answer]:
        return [Answer(self._row(r), r["label"], str(r.get("labeller") or ""), n)
                for n, r in enumerate(self.records, start=1) if r.get("label")]

    def _queue(self) -> list[int]:
        """The rows this labeller still has to answer, in presentation order."""
        mine = self._mine()
        wanted = disputed_rows(self._answers()) if self.labeller == ADJUDICATOR else set(range(len(self.rows)))
        return [i for i in self.order if i in wanted and i not in mine]

    def _current(self, queue: list[int]) -> int | None:
        if self.focus in queue:
            return self.focus
        fresh = [i for i in queue if i not in self.skipped]
        return (fresh or queue or [None])[0]

    def state(self) -> dict:
        with self._locked():
            return self._state()

    def _state(self) -> dict:
        queue = self._queue()
        current = self._current(queue)
        mine = self._mine()
        last = next((self._row(r) for r in reversed(self.records) if r.get("labeller") == self.labeller), None)
        return {
            "run": self.run.resolve().name, "labeller": self.labeller, "labels_file": str(self.labels),
            "answered": len(mine), "total": len(mine) + len(queue), "skipped": len(self.skipped & set(queue)),
            "item": None if current is None else self._item(current),
            "last": None if last is None else {"row": last, "label": mine[last]},
            "guide": self.guide,
        }

    def _item(self, i: int) -> dict:
        row = self.rows[i]
        document = row["passage_index"] is None
        before, passage, after, note = "", row["text"] or "", "", None
        if document:
            gate = "the keyword gate passed over (its start is shown)" if row.get("scores") is None else "that names AI"
            note = (f"A whole document {gate}: label the document as a whole ({auditloop.DOCUMENT_RULE}).")
        else:
            text = self._document(row)
            if text is not None and text[row["char_start"]:row["char_end"]] == passage:
                before, after = context(text, row["char_start"], row["char_end"])
            else:
                note = "The document could not be read from its shard; the passage is shown alone."
        return {"row": i, "doc_id": row["doc_id"], "unit": "document" if document else "passage",
                "url": row.get("url") or "", "domain": registered_domain(row.get("url")) or "",
                "before": before, "passage": passage, "after": after, "note": note}

    def _document(self, row: dict) -> str | None:
        """The whole document the passage came from, read again from its Parquet shard (None if it cannot be).
        A row group is read once: the documents of every sampled row in it are kept (a few MB for 400 rows)."""
        key = (row.get("shard"), row["row"])
        if key not in self.documents:
            self.documents.update(self._read_documents(*key))
            self.documents.setdefault(key, None)
        return self.documents[key]

    def _read_documents(self, relpath: str | None, wanted: int) -> dict[tuple[str | None, int], str]:
        """The text of every sampled passage's document in the shard `relpath` (row `wanted` among them)."""
        sampled = {(relpath, r["row"]) for r in self.rows
                   if r.get("shard") == relpath and r["passage_index"] is not None}
        try:
            return auditloop.document_texts(RunDir(self.run), sampled | {(relpath, wanted)})
        except Exception:  # a moved, changed or unreadable shard: the page says so and shows the passage alone
            return {}

    # -- changes: each one rewrites the labels file before it returns

    def answer(self, i: int, label: str) -> dict:
        if label not in LABELS or not 0 <= i < len(self.rows):
            raise ValueError(f"bad answer: row {i}, label {label!r}")
        with self._locked():
            row = self.rows[i]
            self.records = [r for r in self.records if not (self._row(r) == i and r.get("labeller") == self.labeller)]
            self.records.append({"doc_id": row["doc_id"], "passage_index": row["passage_index"], "label": label,
                                 "labeller": self.labeller, "stratum": row["stratum"],
                                 "time": datetime.now(UTC).isoformat(timespec="seconds")})
            self._write()
            self.skipped.discard(i)
            self.focus = None
            return self._state()

    def skip(self, i: int) -> dict:
        with self._locked():
            self.skipped.add(i)
            self.focus = None
            return self._state()

    def undo(self) -> dict:
        """Take back this labeller's latest answer and show that item again."""
        with self._locked():
            last = next((n for n in range(len(self.records) - 1, -1, -1)
                         if self.records[n].get("labeller") == self.labeller), None)
            if last is not None:
                self.focus = self._row(self.records.pop(last))
                self._write()
            return self._state()

    def model(self, i: int) -> dict | None:
        """The model's label and probability for a row this labeller has answered (None before the answer)."""
        with self._locked():
            if i not in self._mine():
                return None
            row = self.rows[i]
            scores = row.get("scores")
            return {"row": i, "model_label": row["model_label"], "stratum": row["stratum"],
                    "score": None if scores is None else scores[row["model_label"]]}

    def estimate(self) -> dict:
        """Recompute RUN/estimate.json and the report from the labels so far."""
        from .reporting import write_reports

        with self._locked():
            if not self.labels.is_file():
                raise UsageError("nothing is labelled yet")
            result = auditloop.estimate(self.run, self.labels)
            write_reports(self.run)
        return {"labelled": result["labelled"], "sample_rows": result["sample_rows"],
                "agreement": result["agreement"], "labels": result["labels"]}

    def _write(self) -> None:
        write_text_atomic(self.labels, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records))


def interleaved(rows: list[dict]) -> list[int]:
    """Plan rows in round-robin order over strata, each stratum in its drawn (random) order: any prefix holds
    about as many items of each stratum as the others, each a uniform sample of its stratum."""
    rank: dict[str, int] = {}
    keyed = []
    for i, row in enumerate(rows):
        keyed.append((rank.get(row["stratum"], 0), i))
        rank[row["stratum"]] = rank.get(row["stratum"], 0) + 1
    return [i for _, i in sorted(keyed)]


def context(text: str, start: int, end: int, chars: int = CONTEXT_CHARS) -> tuple[str, str]:
    """Up to `chars` characters of the document on each side of the passage, cut at whitespace."""
    before, after = text[max(0, start - chars):start], text[end:end + chars]
    if start > chars and " " in before:
        before = "… " + before.split(" ", 1)[1]
    if end + chars < len(text) and " " in after:
        after = after.rsplit(" ", 1)[0] + " …"
    return before, after


def guide_lines() -> dict[str, str]:
    """The one-line definition of each label, from the "In one line" table of classifiers/LABELING.md."""
    text = (importlib.resources.files("audit.classifiers") / "LABELING.md").read_text(encoding="utf-8")
    found = dict(re.findall(r"^\| `(\w+)` \| (.+?) \|$", text, flags=re.MULTILINE))
    missing = [L for L in LABELS if L not in found]
    if missing:
        raise RuntimeError(f"classifiers/LABELING.md has no one-line definition of {', '.join(missing)}")
    return {L: found[L] for L in LABELS}


def open_session(run_dir: str | Path, n: int, labels: str | Path | None, labeller: str | None,
                 seed: int = 0) -> Session:
    """The sample (drawn now, as `sample` draws it, if the run has none) with the labels so far."""
    run_files = RunDir(Path(run_dir))
    run, plan_path = run_files.root, run_files.audit_plan
    plan = json.loads(plan_path.read_text()) if plan_path.is_file() else None
    if plan is None or not Path(plan["file"]).is_file():
        # No sample yet, or its rows file is gone: draw it (the same seed and size give the same rows again).
        plan = auditloop.sample(run, plan["n"] if plan else n, run_files.label_sample, plan["seed"] if plan else seed)
    elif plan["n"] != n:
        print(f"labelling the existing sample of {len(plan['rows'])} rows (drawn with --n {plan['n']}); "
              f"`corpus-audit sample` draws another")
    sample_file = Path(plan["file"])
    labels_path = Path(labels) if labels else run_files.labels
    if labels_path.resolve() == sample_file.resolve():
        raise UsageError(f"--labels {labels_path} is the sample file itself; give another file (default: "
                         f"{run_files.labels})")
    rows = [json.loads(line) for line in sample_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if [(r["doc_id"], r["passage_index"]) for r in rows] != [(r["doc_id"], r["passage_index"]) for r in plan["rows"]]:
        raise UsageError(f"{sample_file} does not hold the rows of {plan_path}; draw the sample again with "
                         f"`corpus-audit sample {run} --n N --out FILE`")
    return Session(run, labels_path, labeller or _default_labeller(), plan, rows)


def _default_labeller() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (some containers)
        return "labeller"


# -------------------------------------------------------------------------------------------- the server


class LabelServer(ThreadingHTTPServer):
    """The HTTP server: the session, the token, and when it last heard from the page."""

    def __init__(self, session: Session, port: int = 0) -> None:
        super().__init__((HOST, port), _Handler)
        self.session = session
        self.token = secrets.token_urlsafe(24)
        self.last_request = time.monotonic()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/{self.token}/"


class _Handler(BaseHTTPRequestHandler):
    server: LabelServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name; keep the terminal quiet
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        self.server.last_request = time.monotonic()
        parts = urlsplit(self.path)
        prefix = f"/{self.server.token}/"
        if not hmac.compare_digest(parts.path[:len(prefix)].encode(), prefix.encode()):
            return self._send(HTTPStatus.FORBIDDEN, b"forbidden: the URL needs the token printed by corpus-audit label",
                              "text/plain")
        route = parts.path[len(prefix):]
        session = self.server.session
        try:
            if method == "GET" and route in PAGE_FILES:
                name, kind = PAGE_FILES[route]
                body = (importlib.resources.files("audit") / "labelpage" / name).read_bytes()
                return self._send(HTTPStatus.OK, body, kind)
            if method == "GET" and route == "api/state":
                return self._json(session.state())
            if method == "GET" and route == "api/model":
                found = session.model(int(parse_qs(parts.query).get("row", ["-1"])[0]))
                if found is None:
                    return self._json({"error": "answer the item first"}, HTTPStatus.CONFLICT)
                return self._json(found)
            if method == "POST" and route in ("api/answer", "api/skip", "api/undo", "api/estimate"):
                body = self._body()
                if route == "api/answer":
                    return self._json(session.answer(int(body["row"]), str(body["label"])))
                if route == "api/skip":
                    return self._json(session.skip(int(body["row"])))
                if route == "api/undo":
                    return self._json(session.undo())
                return self._json(session.estimate())
        except (UsageError, ValueError, KeyError, TypeError) as error:
            return self._json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        return self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain")

    def _body(self) -> dict:
        if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise ValueError("send JSON")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"request body over {MAX_BODY} bytes")
        body = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        return body

    def _json(self, data: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def serve(session: Session, port: int = 0, open_browser: bool = True, idle_seconds: float = IDLE_SECONDS) -> None:
    """Serve until Ctrl-C or `idle_seconds` without a request. Every answer is already on disk, so stopping loses
    nothing; a request being handled when the stop comes finishes first (the server joins its threads)."""
    server = LabelServer(session, port)
    print(f"labelling {len(session.rows)} sampled rows as {session.labeller!r}; answers go to {session.labels}")
    print(f"open {server.url}  (Ctrl-C stops; it stops by itself after {idle_seconds / 60:g} idle minutes)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        while time.monotonic() - server.last_request < idle_seconds:
            time.sleep(min(1.0, idle_seconds / 10))
        print("stopped after the idle timeout")
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.shutdown()
        server.server_close()
    print(f"{session.labels} holds every answer; run `corpus-audit label {session.run}` to go on")
