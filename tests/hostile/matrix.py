"""The fault matrix: every scenario × every entry point it applies to, and the expected outcome.

``EXPECT`` is the one table of what a user must get. Its keys per scenario are, from the most
to the least specific: an entry point name (``"lc.astream"``), ``"stream"`` / ``"nonstream"``
(chat entry points that do / do not stream), a family (``"chat"``, ``"embed"``, ``"rerank"``)
or ``"*"``. ``XFAIL`` lists the cells that fail today, with why; a fix deletes the names it
repairs (the marks are strict, so a repaired cell fails until its entry is removed).

Example:
    >>> cells = build_cells()
    >>> len({c.scenario.name for c in cells}) == len(SCENARIOS)
    True
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from campusllm.errors import (
    AuthenticationError,
    BadRequestError,
    CampusLLMError,
    ProtocolError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    TimeoutError,
    UnreachableError,
)

from .checks import (
    Cell,
    Check,
    Either,
    Gaps,
    Gives,
    KeyPosition,
    NoRequest,
    PartialEmbeddings,
    Raises,
    Replaced,
    Requests,
    run_checks,
)
from .entry_points import ENTRIES, Entry, run_entry
from .scenarios import SCENARIOS, Scenario
from .server import HostileServer

__all__ = ["EXPECT", "XFAIL", "MatrixCell", "build_cells", "run_cell", "LOGGERS"]

SIE = StreamInterruptedError
STARTED = {"content": "Hello", "reasoning": "plan"}
DEADLINE = 3.0  # timeout=1 s plus a generous margin; the server stalls for 30 s
NO_VPN = ("vpn", "campus network")
LONG_WAIT = ("3600", "60 min", "1 h", "hour")
HTML_PAGE = ("html page", "login page", "captive portal", "web page")


def _typed(cls: type[BaseException], code: int) -> tuple[Check, ...]:
    return (Raises((cls,), status=code, partial=STARTED),)


EXPECT: dict[str, dict[str, tuple[Check, ...]]] = {
    "ok": {"*": (Gives(),)},
    "done_without_finish": {"*": (Gives(),)},
    "finish_without_done": {"*": (Gives(),)},
    "sse_crlf": {"*": (Gives(),)},
    "split_utf8": {"*": (Gives(content="你好世界", reasoning="想"),)},
    # the message must say what came back, not only quote it
    "captive_portal": {"*": (Raises((ProtocolError,), says_any=HTML_PAGE),)},
    "json_for_stream": {"*": (Gives(),)},
    "empty_stream": {"*": (Raises((ProtocolError,)),)},
    "empty_body": {"*": (Raises((ProtocolError,)),)},
    "cut_content_eof": {
        "stream": (Raises((SIE,), partial=STARTED),),
        "nonstream": (Raises((ProtocolError,)),),
    },
    "cut_content_chunked": {"*": (Raises((SIE,), partial=STARTED),)},
    "cut_content_rst": {"*": (Raises((SIE,), partial=STARTED),)},
    "cut_reasoning": {"*": (Raises((SIE,), partial={"content": "", "reasoning": "plan A"}),)},
    "cut_tool_call": {
        "*": (Raises((SIE,), partial={"tool_calls": [("get_weather", '{"city": "Sh')]}),)
    },
    "cut_think_tag": {"*": (Raises((SIE,), partial={"content": "", "reasoning": "plan A"}),)},
    "event_error_400": {"*": _typed(BadRequestError, 400)},
    "event_error_429": {"*": _typed(RateLimitError, 429)},
    "event_error_500": {"*": _typed(ServerError, 500)},
    "event_error_nokey_500": {"*": _typed(ServerError, 500)},
    "data_error_400": {"*": _typed(BadRequestError, 400)},
    "data_error_429": {"*": _typed(RateLimitError, 429)},
    "data_error_500": {"*": _typed(ServerError, 500)},
    "error_200_400": {"*": (Raises((BadRequestError,), status=400),)},
    "error_200_429": {"*": (Raises((RateLimitError,), status=429),)},
    "error_200_500": {"*": (Raises((ServerError,), status=500),)},
    "keepalive_forever": {"*": (Raises((TimeoutError,), within=DEADLINE),)},
    "trickle_body": {"*": (Raises((TimeoutError,), within=DEADLINE),)},
    "stall_after_content": {"*": (Raises((SIE, TimeoutError), partial=STARTED, within=DEADLINE),)},
    "corrupt_gzip": {"*": (Raises((ProtocolError,)),)},
    "short_body": {"*": (Raises((ProtocolError,)),)},
    "reset_after_headers": {"*": (Raises((ProtocolError,)),)},
    "refused": {"*": (Raises((UnreachableError,), says_not=NO_VPN),)},
    "refused_campus_model": {"*": (Raises((UnreachableError,), says_not=NO_VPN),)},
    "redirect_same_host": {"*": (Gives(),)},
    "redirect_other_host": {
        # not followed (and said so), or followed without the key: the invariants check that
        # the other origin never saw the Authorization header
        "*": (Either((Raises((CampusLLMError,), says=("redirect",)),), (Gives(),)),)
    },
    # the adapters' and clients' backoff starts at 0.25 s; an immediate retry takes ~2 ms
    "retry_after_zero": {"*": (Gives(), Requests(2), Gaps(0.2))},
    "retry_after_negative": {"*": (Gives(), Requests(2), Gaps(0.2))},
    "retry_after_garbage": {"*": (Gives(), Requests(2), Gaps(0.2))},
    "retry_after_long": {
        "*": (
            Raises(
                (RateLimitError,),
                status=429,
                says_any=LONG_WAIT,
                says_not=("after retries",),
                retry_after_at_least=3000,
            ),
            Requests(1),
        )
    },
    "litellm_retry_after": {
        "*": (
            Raises(
                (RateLimitError,),
                status=429,
                says_any=LONG_WAIT,
                says_not=("after retries",),
                retry_after_at_least=3000,
            ),
            Requests(1),
        )
    },
    "gateway_408": {"*": (Raises((TimeoutError,), status=408), Requests(2))},
    "key_echo_401": {"*": (Raises((AuthenticationError,), status=401),)},
    "key_echo_400": {"*": (Raises((BadRequestError,), status=400),)},
    "nan_vector": {"*": (Raises((ProtocolError,)),)},
    "inf_vector": {"*": (Raises((ProtocolError,)),)},
    "nan_score": {"*": (Raises((ProtocolError,)),)},
    "embed_batches_fail": {"*": (Raises((CampusLLMError,)), PartialEmbeddings((2, 3)))},
    "lone_surrogate": {
        "*": (
            Either(
                (Raises((BadRequestError,), says=("surrogate",)),),
                (Gives(loose=True), Replaced()),
            ),
        )
    },
    **{
        f"key_{label}": {"*": (Raises((AuthenticationError,)), KeyPosition(), NoRequest())}
        for label in ("zero_width", "fullwidth_digit", "crlf", "non_ascii")
    },
}

_LC_CHAT = "lc.invoke lc.stream lc.ainvoke lc.astream"
_LI_CHAT = "li.chat li.stream_chat li.achat li.astream_chat"
_STREAMS = "lc.stream lc.astream li.stream_chat li.astream_chat core.stream"
_CHAT_NONSTREAM = "lc.invoke lc.ainvoke li.chat li.achat core.invoke"
_EMBED = (
    "lc.embed_documents lc.aembed_documents li.embed_batch li.aembed_batch core.embed core.aembed"
)
_RERANK = "lc.compress lc.acompress li.postprocess li.apostprocess core.rerank core.arerank"
_NOT_LC = f"{_LI_CHAT} core.invoke core.stream {_EMBED} {_RERANK}"


# scenario -> {space-separated entry names: what is wrong today}. A fix deletes the names of
# the cells it repairs (strict marks: a repaired cell fails until its name is gone).
XFAIL: dict[str, dict[str, str]] = {}


# ----------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class MatrixCell:
    """One scenario × entry point, its checks and, if it fails today, why."""

    scenario: Scenario
    entry: Entry
    checks: tuple[Check, ...]
    xfail: str | None

    @property
    def id(self) -> str:
        return f"{self.scenario.name}-{self.entry.name}"


def _applies(s: Scenario, e: Entry) -> bool:
    if s.only and e.name not in s.only and e.family not in s.only:
        return False
    if s.base_url is not None:
        return True
    return e.route in s.routes(s.api_key)


def _keys(e: Entry) -> list[str]:
    keys = [e.name]
    if e.family == "chat":
        keys.append("stream" if e.streams else "nonstream")
    return [*keys, e.family, "*"]


def _lookup(table: dict[str, dict[str, str]], s: Scenario, e: Entry) -> str | None:
    keys = set(_keys(e))
    for spec, reason in table.get(s.name, {}).items():
        if keys & set(spec.split()):
            return reason
    return None


def build_cells() -> list[MatrixCell]:
    """Every applicable cell, scenarios in catalogue order."""
    cells = []
    for s in SCENARIOS.values():
        expect = EXPECT[s.name]
        for e in ENTRIES:
            if not _applies(s, e):
                continue
            checks = next((expect[k] for k in _keys(e) if k in expect), None)
            if checks is None:
                continue
            cells.append(MatrixCell(s, e, checks, _lookup(XFAIL, s, e)))
    return cells


# ----------------------------------------------------------------------------- running a cell

LOGGERS = ("httpx", "httpcore", "openai", "campusllm")


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is not a leak
            pass


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def run_cell(server: HostileServer, cell: MatrixCell) -> Cell:
    """Mount the scenario, call the entry point with DEBUG logging captured, collect it all."""
    s = cell.scenario
    mount = None
    if s.base_url == "refused":
        url = f"http://127.0.0.1:{_closed_port()}/v1"
    else:
        mount = server.mount(s.routes(s.api_key), secrets=[s.api_key])
        url = mount.url
    capture = _Capture()
    saved = []
    for name in LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        lg.setLevel(logging.DEBUG)
        lg.addHandler(capture)
    fired = threading.Event()

    def fire() -> None:
        fired.set()
        if mount is not None:
            mount.abort()

    timer = threading.Timer(s.watchdog, fire)
    timer.daemon = True
    timer.start()
    try:
        obs = run_entry(cell.entry, s, url)
    finally:
        timer.cancel()
        for lg, level in saved:
            lg.removeHandler(capture)
            lg.setLevel(level)
    return Cell(s, cell.entry, obs, mount, "\n".join(capture.lines), fired.is_set())


def check_cell(result: Cell, checks: Sequence[Check]) -> None:
    """Assert the cell's expectations and the invariants (AssertionError names the failure)."""
    __tracebackhide__ = True  # pytest then renders one frame, not the whole check stack
    run_checks(result, checks)
