"""The ``campusllm`` command line: providers, models, chat, complete, doctor, sim, demo.

This package sits above both framework adapters (the demo uses them); nothing in the core
imports it.

Example:
    $ campusllm models sjtu
    $ campusllm chat -m sjtu:deepseek-reasoner "9.11 和 9.9 哪个大?"
    $ campusllm complete -m maas:Qwen2-72B "Once upon a time"
    $ campusllm doctor
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from ..chat import ChatCaller
from ..client import CampusClient
from ..completions import CompletionCaller
from ..errors import CampusLLMError
from ..i18n import tr
from ..registry import ResolvedModel, get_registry
from ..sim import main as sim_main
from ..wire import Delta
from .demo import run_demo
from .doctor import cmd_doctor
from .style import (
    ASSUMED,
    assumed_note,
    assumed_text,
    bold,
    capabilities_text,
    dim,
    fmt_int,
    kind_text,
    limits_text,
    reach_text,
    table,
)
from .usage import add_usage_parser

__all__ = ["main", "build_parser"]


def cmd_providers(args: argparse.Namespace) -> int:
    rows = []
    for p in get_registry().providers():
        base = p.base_url or (f"${p.base_url_env}" if p.base_url_env else "-")
        groups = [f"{v} ({g})" for g, spec in p.key_groups.items() for v in spec.key_env]
        rows.append(
            [
                p.name,
                base,
                p.auth,
                " | ".join([*p.key_env, *groups]),
                limits_text(p),
                reach_text(p.reachability),
            ]
        )
    headers = tr(
        "provider|base url|auth|key env|limits|reach", "提供方|地址|鉴权|密钥变量|限额|网络"
    ).split("|")
    print(table(headers, rows))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    reg = get_registry()
    rows = []
    for p, m in reg.models(args.provider, kind=args.kind):
        status = {
            "active": tr("active", "可用"),
            "trial": tr("trial", "试用"),
            "deprecated": tr("deprecated", "已弃用"),
        }[m.status]
        if m.status != "active":
            status += f"→{m.replacement or '?'}"
        rows.append(
            [
                f"{p.name}:{m.id}",
                ", ".join(m.aliases) or "-",
                kind_text(m.kind),
                assumed_text(fmt_int(m.context_window), m, "context_window"),
                capabilities_text(m),
                status,
            ]
        )
    headers = tr(
        "model|aliases|kind|context|capabilities|status", "模型|别名|类型|上下文|能力|状态"
    ).split("|")
    print(table(headers, rows))
    if any(ASSUMED in row[3] for row in rows):
        print(assumed_note())
    if args.live:
        if not args.provider:
            print(tr("--live needs a PROVIDER", "--live 需要指定提供方"), file=sys.stderr)
            return 2
        resolved = _resolve_any(args.provider, args.base_url)
        with CampusClient(resolved) as client:
            live = client.list_models()
        drift = reg.merge_live(args.provider, live)
        print()
        print(
            bold(
                tr(
                    f"Live /models on {args.provider}: {len(live)} ids",
                    f"{args.provider} 网关的 /models:{len(live)} 个模型",
                )
            )
        )
        none = tr("none", "无")
        print(
            tr("  on the gateway, not in the catalog:", "  网关有、目录中没有:"),
            ", ".join(drift.missing_in_catalog) or none,
        )
        print(
            tr("  in the catalog, not on the gateway:", "  目录中有、网关没有:"),
            ", ".join(drift.missing_on_gateway) or none,
        )
    return 0


def _resolve_any(provider: str, base_url: str | None = None) -> ResolvedModel:
    """Resolve some chat model of ``provider`` (for calls that need a base URL, not a model)."""
    return get_registry().resolve_provider(provider, base_url)


def cmd_chat(args: argparse.Namespace) -> int:
    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    with ChatCaller(args.model, base_url=args.base_url) as caller:
        _write_deltas(caller.stream(messages, thinking=args.thinking), args.verbose)
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    with CompletionCaller(args.model, base_url=args.base_url) as caller:
        kw: dict[str, Any] = {"stop": args.stop or None}
        if args.max_tokens is not None:
            kw["max_tokens"] = args.max_tokens
        _write_deltas(caller.stream(prompt, **kw), args.verbose)
    return 0


def _write_deltas(deltas: Iterable[Delta], verbose: bool) -> None:
    """Print a stream: reasoning dimmed, then the text; usage with ``verbose``."""
    in_reasoning = False
    usage = None
    for delta in deltas:
        if delta.reasoning:
            if not in_reasoning:
                sys.stdout.write(dim(tr("[thinking] ", "[思考] ")))
                in_reasoning = True
            sys.stdout.write(dim(delta.reasoning))
        if delta.content:
            if in_reasoning:
                sys.stdout.write("\n\n")
                in_reasoning = False
            sys.stdout.write(delta.content)
        if delta.usage:
            usage = delta.usage
        sys.stdout.flush()
    sys.stdout.write("\n")
    if usage and verbose:
        print(dim(tr(f"usage: {usage}", f"用量: {usage}")))


def cmd_sim(args: argparse.Namespace) -> int:
    argv = ["--port", str(args.port), "--host", args.host]
    if args.window is not None:
        argv += ["--window", str(args.window)]
    return int(sim_main(argv) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(model=args.model, offline=args.offline)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="campusllm",
        description=tr(
            "Campus and enterprise LLM gateways for LangChain and LlamaIndex.",
            "面向 LangChain 与 LlamaIndex 的校园与企业大模型网关工具。",
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("providers", help=tr("list the known gateways", "列出已知的网关"))
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser(
        "models",
        help=tr(
            "list models; --live compares with the gateway's /models",
            "列出模型;--live 与网关的 /models 对比",
        ),
    )
    p.add_argument("provider", nargs="?")
    p.add_argument("--kind", choices=["chat", "embedding", "rerank"])
    p.add_argument("--live", action="store_true")
    p.add_argument("--base-url")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "chat",
        help=tr(
            "stream one answer; reasoning is shown dimmed", "流式输出一次回答,思考过程淡色显示"
        ),
    )
    p.add_argument("-m", "--model", default=os.environ.get("CAMPUSLLM_MODEL", "sjtu:deepseek-chat"))
    p.add_argument("--thinking", dest="thinking", action="store_true", default=None)
    p.add_argument("--no-thinking", dest="thinking", action="store_false")
    p.add_argument("--system")
    p.add_argument("--base-url")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("prompt", nargs="*")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser(
        "complete", help="stream a text completion of a prompt (/completions), no chat template"
    )
    p.add_argument("-m", "--model", required=True, help="a model serving /completions")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--stop", action="append", help="a stop string (repeatable)")
    p.add_argument("--base-url")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("prompt", nargs="*")
    p.set_defaults(func=cmd_complete)

    p = sub.add_parser(
        "doctor",
        help=tr(
            "check keys, reachability, auth and limits (of the providers with a key, or of "
            "PROVIDER)",
            "检查密钥、连通性、鉴权与限额(检查已配置密钥的提供方,或指定的 PROVIDER)",
        ),
    )
    p.add_argument("provider", nargs="?")
    p.add_argument("--base-url")
    p.add_argument("--timeout", type=float, default=8.0)
    p.add_argument(
        "--today",
        type=date.fromisoformat,
        default=None,
        help="check documented key validity as of this date (YYYY-MM-DD; default: today)",
    )
    p.set_defaults(func=cmd_doctor)

    add_usage_parser(sub)

    p = sub.add_parser(
        "sim", help=tr("run the offline simulator in the foreground", "在前台运行离线模拟器")
    )
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--window",
        type=float,
        default=None,
        help=tr("rate-limit window seconds", "限流窗口长度(秒)"),
    )
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser(
        "demo",
        help=tr(
            "a short tour (offline simulator when no key is set)",
            "简短的功能演示(未设置密钥时使用离线模拟器)",
        ),
    )
    p.add_argument("-m", "--model", default=None)
    p.add_argument(
        "--offline",
        action="store_true",
        help=tr("use the simulator even with a key", "即使有密钥也使用模拟器"),
    )
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        return _reader_gone()
    except CampusLLMError as e:
        print(tr("error: ", "错误: ") + f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _reader_gone() -> int:
    """The reader of stdout went away (``campusllm providers | head -1``): stop quietly.

    What is still buffered can never be written; pointing stdout at ``/dev/null`` lets the
    interpreter's own flush at exit succeed instead of printing a BrokenPipeError. The exit
    code is a shell's for a process ended by SIGPIPE (128 + 13), as for ``cat`` or ``ls``.
    """
    with contextlib.suppress(OSError, ValueError):  # stdout is not a real file (tests)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
