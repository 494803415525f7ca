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
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..auth import get_api_key
from ..chat import ChatCaller
from ..client import CampusClient
from ..completions import CompletionCaller
from ..errors import AuthenticationError, CampusLLMError
from ..registry import ResolvedModel, get_registry
from ..sim import main as sim_main
from ..transport import error_from_exception
from ..transport.library import core_http_library, is_http_error
from ..wire import Delta
from .demo import run_demo
from .style import bold, capabilities_text, dim, fmt_int, limits_text, table

__all__ = ["main", "build_parser"]


def cmd_providers(args: argparse.Namespace) -> int:
    rows = []
    for p in get_registry().providers():
        base = p.base_url or (f"${p.base_url_env}" if p.base_url_env else "-")
        rows.append([p.name, base, p.auth, " | ".join(p.key_env), limits_text(p), p.reachability])
    print(table(["provider", "base url", "auth", "key env", "limits", "reach"], rows))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    reg = get_registry()
    rows = []
    for p, m in reg.models(args.provider, kind=args.kind):
        status = m.status if m.status == "active" else f"{m.status}→{m.replacement or '?'}"
        rows.append(
            [
                f"{p.name}:{m.id}",
                ", ".join(m.aliases) or "-",
                m.kind,
                fmt_int(m.context_window),
                capabilities_text(m),
                status,
            ]
        )
    print(table(["model", "aliases", "kind", "context", "capabilities", "status"], rows))
    if args.live:
        if not args.provider:
            print("--live needs a PROVIDER", file=sys.stderr)
            return 2
        resolved = _resolve_any(args.provider, args.base_url)
        with CampusClient(resolved) as client:
            live = client.list_models()
        drift = reg.merge_live(args.provider, live)
        print()
        print(bold(f"Live /models on {args.provider}: {len(live)} ids"))
        print(
            "  on the gateway, not in the catalog:", ", ".join(drift.missing_in_catalog) or "none"
        )
        print(
            "  in the catalog, not on the gateway:", ", ".join(drift.missing_on_gateway) or "none"
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
                sys.stdout.write(dim("[thinking] "))
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
        print(dim(f"usage: {usage}"))


def cmd_doctor(args: argparse.Namespace) -> int:

    reg = get_registry()
    names = [args.provider] if args.provider else [p.name for p in reg.providers()]
    worst = 0
    for name in names:
        p = reg.provider(name)
        print(bold(f"== {name} ({p.display_name or name})"))
        try:
            key = get_api_key(p)
            print(f"  key      ok (from {' / '.join(p.key_env)} or config)")
        except AuthenticationError as e:
            print(f"  key      missing: {e}")
            key = None
        try:
            resolved = _resolve_any(name, args.base_url)
        except CampusLLMError as e:
            print(f"  base url not configured: {e}")
            continue
        print(f"  base url {resolved.base_url}")
        print(f"  limits   {limits_text(p)}")
        if p.network_hint:
            print(f"  network  {p.network_hint}")
        if key is None:
            worst = max(worst, 1 if args.provider else 0)
            # no key, so no auth check: still tell whether the host answers at all
            try:
                r = core_http_library().get(
                    resolved.base_url.rstrip("/") + "/models", timeout=args.timeout
                )
                print(f"  reach    ok (HTTP {r.status_code}); auth not checked without a key")
            except Exception as e:
                if not is_http_error(e):
                    raise
                worst = 1
                err = error_from_exception(e, resolved)
                print(f"  problem  {type(err).__name__}: {err}")
            continue
        try:
            with CampusClient(resolved, key, timeout=args.timeout) as client:
                ids = client.list_models()
            print(f"  reach    ok, auth ok, {len(ids)} models listed")
            drift = reg.drift(name, ids)
            if drift.missing_in_catalog:
                print(
                    f"  drift    gateway has models we don't: {', '.join(drift.missing_in_catalog)}"
                )
        except CampusLLMError as e:
            worst = 1
            print(f"  problem  {type(e).__name__}: {e}")
    return worst


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
        description="Campus and enterprise LLM gateways for LangChain and LlamaIndex.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("providers", help="list the known gateways")
    p.set_defaults(func=cmd_providers)

    p = sub.add_parser("models", help="list models; --live compares with the gateway's /models")
    p.add_argument("provider", nargs="?")
    p.add_argument("--kind", choices=["chat", "embedding", "rerank"])
    p.add_argument("--live", action="store_true")
    p.add_argument("--base-url")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("chat", help="stream one answer; reasoning is shown dimmed")
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

    p = sub.add_parser("doctor", help="check keys, reachability, auth and limits")
    p.add_argument("provider", nargs="?")
    p.add_argument("--base-url")
    p.add_argument("--timeout", type=float, default=8.0)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("sim", help="run the offline simulator in the foreground")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--window", type=float, default=None, help="rate-limit window seconds")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("demo", help="a short tour (offline simulator when no key is set)")
    p.add_argument("-m", "--model", default=None)
    p.add_argument("--offline", action="store_true", help="use the simulator even with a key")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CampusLLMError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
