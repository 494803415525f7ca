"""The ``usage`` a body reports, found while the body streams past: what the gateway counted.

The transport charges the rate limiter an estimate before sending (input plus the most the
answer may take) and corrects it with what the gateway reports afterwards. Every answer,
streamed or not and whichever path reads it (the openai SDK behind both adapters, the core's
own readers), passes through the transport, so the report is looked for there, once, without
parsing the body a second time:

* a JSON answer (chat, text completion, embeddings, rerank) carries a top-level ``usage``;
* an event stream carries it in its last chunk when ``stream_options.include_usage`` was
  asked for (some servers put a running total in every chunk: the last one wins).

Only the few bytes around ``"usage"`` are parsed. A body compressed with gzip or deflate is
inflated on the side; any other encoding is not read (the estimate stays, which errs on the
safe side).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

__all__ = ["UsageScanner"]

_KEY = b'"usage"'
_COUNTS = ("total_tokens", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens")
_DECODER = json.JSONDecoder()


def _usage_at(data: bytes) -> dict[str, Any] | None:
    """The last ``"usage": {...}`` object in ``data`` that holds token counts."""
    end = len(data)
    while True:
        at = data.rfind(_KEY, 0, end)
        if at < 0:
            return None
        end = at
        rest = data[at + len(_KEY) : at + len(_KEY) + 4096].lstrip()
        if not rest.startswith(b":"):
            continue  # the word in a value ("usage"), not the key
        try:
            value, _ = _DECODER.raw_decode(rest[1:].lstrip().decode("utf-8", "replace"))
        except ValueError:
            continue
        if isinstance(value, dict) and any(k in value for k in _COUNTS):
            return value


class UsageScanner:
    """Feed a body's bytes as they arrive; :meth:`usage` is the last report found (or None).

    ``content_encoding`` is the response's ``Content-Encoding``: the bytes fed are the raw
    ones off the wire. A JSON body is kept until it ends (its ``usage`` may come anywhere);
    an event stream is looked at line by line, keeping only an unfinished line.


    Example:
        >>> s = UsageScanner()
        >>> s.feed(b'data: {"choices": [{"delta": {"content": "Hi"}}]}\\n\\n')
        >>> s.feed(b'data: {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, ')
        >>> s.feed(b'"total_tokens": 12}}\\n\\ndata: [DONE]\\n\\n')
        >>> s.usage()
        {'prompt_tokens': 9, 'completion_tokens': 3, 'total_tokens': 12}
        >>> j = UsageScanner()
        >>> j.feed(b'{"data": [{"embedding": [0.1]}], ')
        >>> j.feed(b'"usage": {"prompt_tokens": 4, "total_tokens": 4}}')
        >>> j.usage()
        {'prompt_tokens': 4, 'total_tokens': 4}
    """

    __slots__ = ("_inflate", "_json", "_held", "_usage", "_off")

    def __init__(self, content_encoding: str | None = None) -> None:
        enc = (content_encoding or "").strip().lower()
        self._off = False
        self._inflate: Any = None
        if enc in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif enc == "deflate":
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        elif enc not in ("", "identity"):
            self._off = True  # br, zstd, several codings: left alone
        self._json: bool | None = None
        self._held: list[bytes] = []
        self._usage: dict[str, Any] | None = None

    def feed(self, raw: bytes) -> None:
        """Look at the next bytes of the body (never raises: a body it cannot read is ignored)."""
        if self._off or not raw:
            return
        try:
            data = self._inflate.decompress(raw) if self._inflate is not None else raw
            self._take(data)
        except Exception:  # the reader of the body reports what is wrong with it, not us
            self._off = True

    def _take(self, data: bytes) -> None:
        if self._json is None:
            head = (b"".join(self._held) + data).lstrip()
            if not head:
                self._held.append(data)
                return
            self._json = head[:1] in (b"{", b"[")
            data, self._held = b"".join(self._held) + data, []
        if self._json:
            self._held.append(data)
            return
        # an event stream: complete lines only; an unfinished one waits for the rest
        buf = b"".join(self._held) + data if self._held else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._held = [buf]
            return
        lines, rest = buf[: cut + 1], buf[cut + 1 :]
        self._held = [rest] if rest else []
        if _KEY in lines:
            for line in lines.split(b"\n"):
                if _KEY in line:
                    found = _usage_at(line)
                    if found is not None:
                        self._usage = found

    def usage(self) -> dict[str, Any] | None:
        """The last ``usage`` the body reported so far (call it once the body ended)."""
        if self._off:
            return self._usage
        held = b"".join(self._held)
        self._held = []
        if held and _KEY in held:
            found = _usage_at(held)  # the whole JSON body, or an event stream's last line
            if found is not None:
                self._usage = found
        return self._usage
