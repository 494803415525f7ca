"""``campusllm usage [PROVIDER]``: tokens used, remaining and when they reset, per key and model.

The figures come from the limiter's ledger, which every process sharing the backend writes
(``local``: every process of this user on this machine; ``redis://…``: every machine using
that server), so the table covers all of them, not just this one. Keys appear as their
fingerprints (:func:`~campusllm.limiter.key_fingerprint`): the ledger never holds a key.

Example:
    $ campusllm usage sjtu
    $ campusllm usage --limiter redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ..i18n import tr
from ..limiter import ALL_MODELS, UsageRow, backend_spec, usage
from ..limiter.budget import format_reset
from .style import dim, table

__all__ = ["add_usage_parser", "cmd_usage", "usage_table"]

_PERIOD = {"day": ("day", "日"), "week": ("week", "周"), "month": ("month", "月")}


def _period(kind: str) -> str:
    en, zh = _PERIOD.get(kind, (kind, kind))
    return tr(en, zh)


def usage_table(rows: Sequence[UsageRow]) -> str:
    """The rows of :func:`~campusllm.limiter.usage` as a table in the user's language.

    Example:
        >>> row = UsageRow("sjtu", "0123456789abcdef", "*", "week", 1200, 3, 0.0, 10**9)
        >>> usage_table([row]).splitlines()[2].split()[6:9]
        ['3', '1,000,000,000', '999,998,800']
    """
    headers = tr(
        "provider|key|model|period|used|requests|limit|remaining|resets",
        "提供方|密钥指纹|模型|周期|已用|请求数|额度|剩余|重置时间",
    ).split("|")
    body = [
        [
            r.provider,
            r.key_fingerprint,
            tr("(all models)", "(全部模型)") if r.model == ALL_MODELS else r.model,
            _period(r.period),
            f"{r.used:,}",
            f"{r.requests:,}",
            "-" if r.limit is None else f"{r.limit:,}",
            "-" if r.remaining is None else f"{r.remaining:,}",
            format_reset(r.reset_at),
        ]
        for r in rows
    ]
    return table(headers, body)


def cmd_usage(args: argparse.Namespace) -> int:
    """Print the usage table (or JSON with ``--json``); exit 0 even when nothing is recorded."""
    spec = backend_spec(args.limiter)
    rows = usage(args.provider, limiter=spec)
    if args.json:
        print(
            json.dumps(
                [{**r.__dict__, "remaining": r.remaining} for r in rows],
                ensure_ascii=False,
                indent=2,
            )
        )
        return 0
    print(
        dim(
            tr(
                f"Token usage recorded by every process sharing the limiter backend {spec!r}:",
                f"共享限流后端 {spec!r} 的所有进程记录的 token 用量:",
            )
        )
    )
    if not rows:
        who = f" ({args.provider})" if args.provider else ""
        print(tr(f"No token usage recorded yet{who}.", f"还没有记录到任何用量{who}。"))
        return 0
    print(usage_table(rows))
    return 0


def add_usage_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``usage`` on the CLI's subcommands."""
    p = sub.add_parser(
        "usage",
        help=tr(
            "tokens used / remaining / reset per key and model, from all processes",
            "各密钥、各模型的 token 用量、剩余额度与重置时间(汇总所有进程)",
        ),
    )
    p.add_argument("provider", nargs="?")
    p.add_argument(
        "--limiter",
        default=None,
        help=tr(
            "backend to read: local, local:/path, redis://host:port/db "
            "(default: $CAMPUSLLM_LIMITER, the config file, else local)",
            "要读取的后端:local、local:/路径、redis://host:port/db"
            "(默认:$CAMPUSLLM_LIMITER、配置文件,否则 local)",
        ),
    )
    p.add_argument("--json", action="store_true", help=tr("print JSON", "输出 JSON"))
    p.set_defaults(func=cmd_usage)
