"""The ``campusllm`` command line: providers, models, chat, doctor, sim, demo.

Example:
    $ campusllm models sjtu
    $ campusllm chat -m sjtu:deepseek-reasoner "9.11 和 9.9 哪个大?"
    $ campusllm doctor
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import CampusLLMError

__all__ = ["main"]


def _style(code: str, text: str, stream: Any = None) -> str:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR") or not getattr(stream, "isatty", lambda: False)():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def dim(text: str) -> str:
    return _style("2", text)


def bold(text: str) -> str:
    return _style("1", text)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)) for row in rows]
    return "\n".join(out)


def _fmt_int(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1000 and n % 1024 == 0:
        return f"{n // 1024}K"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _limits(p: Any) -> str:
    parts = []
    if p.limits.rpm:
        parts.append(f"{p.limits.rpm} rpm")
    if p.limits.tpm:
        parts.append(f"{p.limits.tpm} tpm")
    if p.limits.weekly_tokens:
        parts.append(f"{p.limits.weekly_tokens} tok/week")
    return ", ".join(parts) or "-"


def cmd_providers(args: argparse.Namespace) -> int:
    from ..registry import get_registry

    rows = []
    for p in get_registry().providers():
        base = p.base_url or (f"${p.base_url_env}" if p.base_url_env else "-")
        rows.append([p.name, base, p.auth, " | ".join(p.key_env), _limits(p), p.reachability])
    print(_table(["provider", "base url", "auth", "key env", "limits", "reach"], rows))
    return 0


def _caps(m: Any) -> str:
    caps = []
    if m.tools:
        caps.append("tools")
    if m.vision:
        caps.append("vision")
    if m.reasoning.shape != "none":
        caps.append("reasoning")
    if m.reasoning.toggle != "none":
        caps.append("thinking-switch")
    return ",".join(caps) or "-"


def cmd_models(args: argparse.Namespace) -> int:
    from ..registry import get_registry

    reg = get_registry()
    rows = []
    for p, m in reg.models(args.provider, kind=args.kind):
        status = m.status if m.status == "active" else f"{m.status}→{m.replacement or '?'}"
        rows.append(
            [
                f"{p.name}:{m.id}",
                ", ".join(m.aliases) or "-",
                m.kind,
                _fmt_int(m.context_window),
                _caps(m),
                status,
            ]
        )
    print(_table(["model", "aliases", "kind", "context", "capabilities", "status"], rows))
    if args.live:
        if not args.provider:
            print("--live needs a PROVIDER", file=sys.stderr)
            return 2
        from ..client import CampusClient

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


def _resolve_any(provider: str, base_url: str | None = None) -> Any:
    """Resolve some chat model of ``provider`` (for calls that need a base URL, not a model)."""
    from ..registry import get_registry

    return get_registry().resolve_provider(provider, base_url)


def cmd_chat(args: argparse.Namespace) -> int:
    from ..chat import ChatCaller

    prompt = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    messages: list[dict[str, Any]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    with ChatCaller(args.model, base_url=args.base_url) as caller:
        in_reasoning = False
        usage = None
        for delta in caller.stream(messages, thinking=args.thinking):
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
        if usage and args.verbose:
            print(dim(f"usage: {usage}"))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import httpx

    from ..auth import get_api_key
    from ..errors import AuthenticationError
    from ..registry import get_registry

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
        print(f"  limits   {_limits(p)}")
        if p.network_hint:
            print(f"  network  {p.network_hint}")
        if key is None:
            worst = max(worst, 1 if args.provider else 0)
            # no key, so no auth check: still tell whether the host answers at all
            from ..transport import error_from_exception

            try:
                r = httpx.get(resolved.base_url.rstrip("/") + "/models", timeout=args.timeout)
                print(f"  reach    ok (HTTP {r.status_code}); auth not checked without a key")
            except httpx.HTTPError as e:
                worst = 1
                err = error_from_exception(e, resolved)
                print(f"  problem  {type(err).__name__}: {err}")
            continue
        from ..client import CampusClient

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
        except httpx.HTTPError as e:  # pragma: no cover - mapped by the client normally
            worst = 1
            print(f"  problem  {type(e).__name__}")
    return worst


def cmd_sim(args: argparse.Namespace) -> int:
    from ..sim import main as sim_main

    argv = ["--port", str(args.port), "--host", args.host]
    if args.window is not None:
        argv += ["--window", str(args.window)]
    return int(sim_main(argv) or 0)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

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
