"""Reading JSON Lines that people write by hand (labels, training passages, `classify` input): each bad line is
reported with where it is, so the fix is one look away."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from audit.errors import UsageError


def read_objects(
    lines: Iterable[str], where: Callable[[int], str], error: type[Exception] = UsageError
) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line. A line that is not a JSON object raises `error` with the
    message starting with `where(line number)`.

    >>> list(read_objects(['{"a": 1}', "", '{"b": 2}'], lambda n: f"x.jsonl:{n}"))
    [(1, {'a': 1}), (3, {'b': 2})]
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(
                f"{where(number)}: not valid JSON ({exc.msg.removesuffix(' at')} at column {exc.colno}); "
                "each line must be one JSON object"
            ) from None
        if not isinstance(record, dict):
            raise error(f"{where(number)}: each line must be a JSON object")
        yield number, record
