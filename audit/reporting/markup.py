"""Tiny HTML building blocks that escape by default.

Every value becomes text through `esc` unless it is already `Html` (markup this package built itself), so
corpus strings cannot turn into markup by forgetting a call.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any


class Html(str):
    """A string of markup built by the report itself, safe to insert as is.

    Adding a plain string to it escapes the plain string, so concatenation stays safe too.
    """

    def __add__(self, other: Any) -> Html:
        return Html(str.__add__(self, esc(other)))

    def __radd__(self, other: Any) -> Html:
        return Html(str.__add__(esc(other), self))


# Control characters (but tab and newline) and the bidirectional embedding, override and isolate marks, which
# would let corpus text reorder what is shown around it; removed from every value before escaping.
_INVISIBLE = {
    c: None
    for c in [
        *range(0x00, 0x09),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}


def esc(value: Any) -> Html:
    if isinstance(value, Html):
        return value
    text = "" if value is None else str(value)
    return Html(html.escape(text.translate(_INVISIBLE), quote=True))


def join(parts: Iterable[Any], sep: str = "") -> Html:
    """Escape and concatenate `parts`; `sep` is a literal the report writes itself (" · ", ", ")."""
    return Html(sep.join(esc(p) for p in parts))


def el(name: str, content: Any = "", **attrs: Any) -> Html:
    """<name attrs>content</name>; attribute names use a trailing underscore for Python keywords (class_)."""
    rendered = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Html(f"<{name}{rendered}>{esc(content)}</{name}>")


def table(
    headers: Sequence[Any], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (), class_: str = "data"
) -> Html:
    """A table whose columns listed in `numeric` are right-aligned with tabular figures."""

    def cells(tag: str, values: Sequence[Any]) -> Html:
        return join(el(tag, v, class_="num" if i in numeric else None) for i, v in enumerate(values))

    body = join(el("tr", cells("td", row)) for row in rows)
    return el(
        "div",
        el("table", el("thead", el("tr", cells("th", headers))) + el("tbody", body), class_=class_),
        class_="table-wrap",
    )
