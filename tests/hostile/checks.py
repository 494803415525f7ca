"""Assertions on one fault-matrix cell: what a user must get from an entry point.

Each check looks at a :class:`Cell` (the scenario, the entry point, what the call produced and
what the server received) and raises ``AssertionError`` naming what went wrong. The matrix
table combines them; :func:`invariants` are asserted on every cell whatever it expects.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .entry_points import Answer, Entry, Observed
from .scenarios import DOCS, Scenario, ok_ranking, ok_vector
from .server import Mount

__all__ = [
    "Cell",
    "Check",
    "Gives",
    "Raises",
    "Either",
    "Requests",
    "Gaps",
    "NoRequest",
    "PartialEmbeddings",
    "Replaced",
    "KeyPosition",
    "invariants",
    "run_checks",
]

FRAGMENTS = ("</thi", "<think", "</think")


@dataclass
class Cell:
    """Everything known about one call once it ended."""

    scenario: Scenario
    entry: Entry
    obs: Observed
    mount: Mount | None
    logs: str = ""
    watchdog_fired: bool = False
    notes: list[str] = field(default_factory=list)

    def requests(self, route: str | None = None) -> list[Any]:
        if self.mount is None:
            return []
        return self.mount.seen(route or self.entry.route)


class Check:
    """One property of a cell's outcome."""

    def check(self, cell: Cell) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if v not in (None, (), {}, False)}
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"{type(self).__name__}({inner})"


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "no error"
    return f"{type(e).__module__}.{type(e).__name__}: {str(e)[:300]}"


@dataclass(repr=False)
class Gives(Check):
    """The call succeeds with the well-behaved answer (``loose``: any answer of the right shape)."""

    content: str = "Hello world"
    reasoning: str = "plan"
    loose: bool = False

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        obs = cell.obs
        assert obs.error is None, f"expected an answer, got {_describe(obs.error)}"
        family = cell.entry.family
        value = obs.value
        if family == "chat":
            assert isinstance(value, Answer), value
            assert value.content == self.content, f"content {value.content!r}"
            if not self.loose:
                assert value.reasoning == self.reasoning, f"reasoning {value.reasoning!r}"
        elif family == "embed":
            texts = list(cell.scenario.texts)
            assert isinstance(value, list) and len(value) == len(texts), f"vectors: {value!r}"
            if not self.loose:
                assert value == [ok_vector(t) for t in texts], f"wrong vectors {value!r}"
        else:
            assert isinstance(value, list) and len(value) == len(DOCS), f"ranking: {value!r}"
            if not self.loose:
                assert [i for i, _ in value] == ok_ranking(DOCS), f"wrong order {value!r}"


@dataclass(repr=False)
class Raises(Check):
    """The call raises one of ``types`` with these properties.

    ``partial``: expected ``partial_content`` / ``partial_reasoning`` / ``partial_tool_calls``
    (as ``(name, arguments)`` pairs) on the error itself. ``says``: substrings that must all
    appear in ``str(e)`` (case-insensitive); ``says_any``: at least one of them; ``says_not``:
    none of them. ``within``: the call ended within that many seconds.
    """

    types: tuple[type[BaseException], ...]
    status: int | None = None
    partial: dict[str, Any] | None = None
    says: tuple[str, ...] = ()
    says_any: tuple[str, ...] = ()
    says_not: tuple[str, ...] = ()
    within: float | None = None
    retry_after_at_least: float | None = None

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        e = cell.obs.error
        names = " or ".join(t.__name__ for t in self.types)
        assert e is not None, f"expected {names}, but the call returned {cell.obs.value!r}"
        assert isinstance(e, self.types), f"expected {names}, got {_describe(e)}"
        text = str(e).lower()
        if self.status is not None:
            assert getattr(e, "status_code", None) == self.status, (
                f"status_code {getattr(e, 'status_code', None)!r}, expected {self.status}"
            )
        for s in self.says:
            assert s.lower() in text, f"message does not say {s!r}: {str(e)[:300]!r}"
        if self.says_any:
            assert any(s.lower() in text for s in self.says_any), (
                f"message says none of {self.says_any}: {str(e)[:300]!r}"
            )
        for s in self.says_not:
            assert s.lower() not in text, f"message says {s!r}: {str(e)[:300]!r}"
        if self.partial is not None:
            for key, want in self.partial.items():
                got = getattr(e, f"partial_{key}", None)
                if key == "tool_calls" and isinstance(got, list):
                    got = [(t.get("name"), t.get("arguments")) for t in got]
                assert got == want, f"partial_{key} is {got!r}, expected {want!r} ({_describe(e)})"
        if self.retry_after_at_least is not None:
            ra = getattr(e, "retry_after", None)
            assert ra is not None and ra >= self.retry_after_at_least, f"retry_after {ra!r}"
        if self.within is not None:
            assert cell.obs.elapsed <= self.within, (
                f"took {cell.obs.elapsed:.1f} s, expected at most {self.within} s"
            )


@dataclass(repr=False)
class Either(Check):
    """At least one of two sets of checks holds."""

    first: tuple[Check, ...]
    second: tuple[Check, ...]

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        failures = []
        for option in (self.first, self.second):
            try:
                for c in option:
                    c.check(cell)
                return
            except AssertionError as e:
                failures.append(str(e))
        raise AssertionError(" / neither: ".join(failures))


@dataclass(repr=False)
class Requests(Check):
    """The server received exactly ``n`` requests on the entry point's route."""

    n: int

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        got = len(cell.requests())
        assert got == self.n, f"server received {got} requests, expected {self.n}"


@dataclass(repr=False)
class Gaps(Check):
    """Consecutive attempts were at least ``min_s`` apart (a backoff, not a burst)."""

    min_s: float

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        times = [r.t for r in cell.requests()]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert gaps, "no retry was made"
        assert min(gaps) >= self.min_s, (
            f"retries {', '.join(f'{g * 1000:.0f} ms' for g in gaps)} apart; expected a backoff "
            f"of at least {self.min_s * 1000:.0f} ms"
        )


@dataclass(repr=False)
class NoRequest(Check):
    """Nothing reached the server (the call was refused before sending)."""

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        got = cell.requests(None) if cell.mount else []
        assert not got, f"{len(got)} request(s) reached the server"


@dataclass(repr=False)
class PartialEmbeddings(Check):
    """The error carries the vectors received and the indices of the inputs that failed."""

    failed: tuple[int, ...]

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        e = cell.obs.error
        texts = list(cell.scenario.texts)
        got = getattr(e, "partial_embeddings", None)
        failed = getattr(e, "failed_indices", None)
        assert got is not None and failed is not None, (
            f"{_describe(e)} carries no partial_embeddings/failed_indices"
        )
        assert sorted(failed) == list(self.failed), f"failed_indices {failed!r}"
        want = [None if i in self.failed else ok_vector(t) for i, t in enumerate(texts)]
        assert list(got) == want, f"partial_embeddings {got!r}"


@dataclass(repr=False)
class Replaced(Check):
    """What reached the server has U+FFFD where the user's text had a lone surrogate."""

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        reqs = cell.requests()
        assert reqs, "nothing was sent"
        body = reqs[-1].body.decode("utf-8")
        assert "\ufffd" in body or "\\ufffd" in body, f"no replacement character in {body[:200]!r}"


@dataclass(repr=False)
class KeyPosition(Check):
    """The message names the position of the first character that cannot be in a key."""

    def check(self, cell: Cell) -> None:
        __tracebackhide__ = True  # the failure message says it all
        key = cell.scenario.api_key
        pos = next(i for i, ch in enumerate(key) if not (ch.isascii() and ch.isprintable()))
        text = str(cell.obs.error)
        assert "position" in text.lower(), f"no position in {text[:300]!r}"
        assert str(pos) in text or str(pos + 1) in text, f"position {pos} not named: {text!r}"


# ----------------------------------------------------------------------------- invariants


def _chain(e: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo = [e] if e is not None else []
    while todo:
        x = todo.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        todo += [x.__cause__, x.__context__]  # type: ignore[list-item]


def _renderings(e: BaseException) -> Iterator[tuple[str, str]]:
    yield "str", str(e)
    yield "repr", repr(e)
    yield "args", repr(e.args)
    for attr in ("message", "body", "hint", "partial_content", "partial_reasoning"):
        v = getattr(e, attr, None)
        if v is not None:
            yield attr, repr(v)
    resp = getattr(e, "response", None)
    if resp is not None:
        for attr in ("text", "content", "headers"):
            try:
                v = getattr(resp, attr)
            except Exception:  # noqa: BLE001 - a streamed response may not be readable
                continue
            yield f"response.{attr}", repr(dict(v) if attr == "headers" else v)


def _secrets(scenario: Scenario) -> list[str]:
    key = scenario.api_key
    parts = [key] + [p for p in key.replace("\r", "\n").split("\n") if len(p) >= 10]
    return [p for p in parts if len(p) >= 6]


def invariants(cell: Cell) -> None:
    """What must hold in every cell: no key anywhere, no tag fragments, no runaway call."""
    __tracebackhide__ = True
    secrets = _secrets(cell.scenario)
    e = cell.obs.error
    if e is not None:
        text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        for s in secrets:
            assert s not in text, "the key is in the traceback text"
        for x in _chain(e):
            for where, rendered in _renderings(x):
                for s in secrets:
                    assert s not in rendered, (
                        f"the key is in {type(x).__module__}.{type(x).__name__}.{where} "
                        "on the exception chain"
                    )
    for s in secrets:
        assert s not in cell.logs, "the key is in the DEBUG logs of httpx/httpcore/openai/campusllm"
    pieces = list(cell.obs.streamed)
    value = cell.obs.value
    if isinstance(value, Answer):
        pieces += [value.content, value.reasoning]
    for attr in ("partial_content", "partial_reasoning"):
        v = getattr(e, attr, None)
        if isinstance(v, str):
            pieces.append(v)
    for p in pieces:
        for frag in FRAGMENTS:
            assert frag not in p, f"the output contains the tag fragment {frag!r}: {p!r}"
    if cell.mount is not None:
        for r in cell.mount.seen():
            if r.other_host:
                assert not r.auth and not r.leaked, (
                    "another origin (the redirect target) received the Authorization header"
                )
    if isinstance(value, list) and cell.entry.family == "embed":
        for vec in value:
            assert all(math.isfinite(x) for x in vec), "a non-finite vector was returned"
    if isinstance(value, list) and cell.entry.family == "rerank":
        assert all(math.isfinite(s) for _, s in value), "a non-finite score was returned"


def run_checks(cell: Cell, checks: Sequence[Check]) -> None:
    """All checks of the cell, then the invariants."""
    __tracebackhide__ = True
    if cell.obs.unsupported:
        raise AssertionError(cell.obs.unsupported)
    assert not cell.watchdog_fired, (
        f"the call was still running after {cell.scenario.watchdog} s and the server hung up on "
        f"it (it then ended with {_describe(cell.obs.error)})"
    )
    for c in checks:
        c.check(cell)
    invariants(cell)
