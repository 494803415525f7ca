"""``campusllm doctor``: is each configured key there, valid, accepted, and the gateway reachable?

Without a PROVIDER it checks the providers that have a key configured (an env var or the
config file), since a check without a key can only say whether the host answers; with one
it checks that provider, key or not. Keys are never printed, only where they were found.
Output speaks the user's language (:func:`campusllm.i18n.tr`).

Example:
    $ campusllm doctor            # every provider with a key
    $ campusllm doctor sjtu       # SJTU, with or without a key
"""

from __future__ import annotations

import argparse
import warnings
from datetime import date

from pydantic import SecretStr

from ..auth import KeySlot, key_slots, key_validity, missing_key_error
from ..client import CampusClient
from ..errors import CampusLLMError
from ..i18n import tr
from ..registry import ProviderSpec, get_registry
from ..registry.keys import pattern_matches
from ..transport import error_from_exception
from ..transport.library import core_http_library, is_http_error
from .style import bold, dim, display_width, limits_text

__all__ = ["cmd_doctor", "configured_providers"]

_LABELS = {
    "key": "密钥",
    "validity": "有效期",
    "base url": "地址",
    "limits": "限额",
    "network": "网络",
    "reach": "连通",
    "problem": "问题",
    "drift": "差异",
    "auth": "鉴权",
}
_LABEL_WIDTH = 9


def _row(label: str, text: str) -> None:
    """One indented ``label  text`` line, labels in a column of their own."""
    shown = tr(label, _LABELS[label])
    pad = max(1, _LABEL_WIDTH - display_width(shown))
    print(f"  {shown}{' ' * pad}{text}")


def _has_key(slots: list[KeySlot]) -> bool:
    """Whether any key of the provider is configured (set, even if it is malformed)."""
    return any(s.found is not None or s.error is not None for s in slots)


def configured_providers() -> list[str]:
    """The providers with at least one key configured, in catalog order."""
    return [p.name for p in get_registry().providers() if _has_key(key_slots(p))]


def _key_lines(p: ProviderSpec, slots: list[KeySlot]) -> tuple[list[str], bool]:
    """What ``doctor`` says about each key of ``p`` (never the key), and whether one is bad."""
    lines: list[str] = []
    bad = False
    default = slots[0]
    if default.error is not None:
        bad = True
        lines.append(str(default.error))
    elif default.found is not None:
        src = default.found.source
        ok = tr(f"ok (from {src})", f"正常(来自 {src})")
        lines.append(tr("default: ", "默认:") + ok if len(slots) > 1 else ok)
    else:
        lines.append(tr("missing: ", "缺失:") + str(missing_key_error(p)))
    for slot in slots[1:]:
        shown = slot.models and slot.models != (slot.name,)
        label = f"{slot.name} ({', '.join(slot.models)})" if shown else slot.name
        if slot.error is not None:
            bad = True
            lines.append(f"{label}: {slot.error}")
        elif slot.found is not None:
            src = slot.found.source
            lines.append(f"{label}: " + tr(f"ok (from {src})", f"正常(来自 {src})"))
        else:
            looked = tr(" or ", " 或 ").join(slot.sources)
            lines.append(
                f"{label}: "
                + tr(
                    f"not set ({looked}); these models use the default key",
                    f"未设置({looked});这些模型使用默认密钥",
                )
            )
    return lines, bad


def _distinct_keys(p: ProviderSpec, slots: list[KeySlot]) -> list[tuple[str, SecretStr, str]]:
    """``(label, key, model)`` for each different key that is set: each is checked once.

    ``model`` is a catalogued model the key serves (empty: any), so that a rejection names
    the right env vars.
    """
    out: dict[str, tuple[list[str], SecretStr, str]] = {}
    for slot in slots:
        if slot.found is None:
            continue
        model = next(
            (m.id for m in p.models if any(pattern_matches(x, m.names()) for x in slot.models)),
            "",
        )
        value = slot.found.key.get_secret_value()
        out.setdefault(value, ([], slot.found.key, model))[0].append(slot.name)
    return [(" = ".join(names), key, model) for names, key, model in out.values()]


def _no_key_configured() -> None:
    print(
        tr(
            "No API key is configured for any provider, so there is nothing to check. Set the "
            "key of your gateway (e.g. SJTU_API_KEY=…; `campusllm providers` lists each "
            "gateway's variable) or add it under [keys] in the campusllm config file, then run "
            "`campusllm doctor` again. `campusllm doctor PROVIDER` checks one provider's "
            "address even without a key.",
            "没有为任何提供方配置 API 密钥,因此没有可检查的内容。请设置你所用网关的密钥"
            "(例如 SJTU_API_KEY=…;`campusllm providers` 会列出各网关的变量名),或写在 campusllm "
            "配置文件的 [keys] 下,然后再运行 `campusllm doctor`。`campusllm doctor PROVIDER` "
            "在没有密钥时也能检查某个提供方的地址是否可达。",
        )
    )


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the providers ``args`` names (see the module doc); the exit code is 1 when a key
    is missing, malformed or refused, or a gateway cannot be reached."""
    if args.provider:
        names = [args.provider]
    else:
        names = configured_providers()
        if not names:
            _no_key_configured()
            return 1
        others = len(get_registry().providers()) - len(names)
        if others:
            print(
                dim(
                    tr(
                        f"Checking the providers with a key: {', '.join(names)} ({others} "
                        "others have none; `campusllm doctor PROVIDER` checks one of them).",
                        f"检查已配置密钥的提供方:{', '.join(names)}(另有 {others} 个没有密钥;"
                        "`campusllm doctor PROVIDER` 可检查其中某一个)。",
                    )
                )
            )
    worst = 0
    for name in names:
        worst = max(worst, _check_provider(name, args, explicit=bool(args.provider)))
    return worst


def _check_provider(name: str, args: argparse.Namespace, *, explicit: bool) -> int:
    reg = get_registry()
    today = args.today or date.today()
    p = reg.provider(name)
    worst = 0
    print(bold(f"== {name} ({p.display_name or name})"))
    slots = key_slots(p)
    lines, bad = _key_lines(p, slots)
    for line in lines:
        _row("key", line)
    if bad:
        worst = 1
    validity = key_validity(p, today)
    if validity is not None:
        _row("validity", str(validity))
    try:
        resolved = reg.resolve_provider(name, args.base_url)
    except CampusLLMError as e:
        _row("base url", tr(f"not configured: {e}", f"未配置:{e}"))
        return worst
    _row("base url", resolved.base_url)
    _row("limits", limits_text(p))
    if p.network_hint:
        _row("network", p.network_hint)
    keys = _distinct_keys(p, slots)
    if not keys:
        worst = max(worst, 1 if explicit else 0)
        # no key, so no auth check: still tell whether the host answers at all
        try:
            r = core_http_library().get(
                resolved.base_url.rstrip("/") + "/models", timeout=args.timeout
            )
            _row(
                "reach",
                tr(
                    f"ok (HTTP {r.status_code}); auth not checked without a key",
                    f"正常(HTTP {r.status_code});没有密钥,未检查鉴权",
                ),
            )
        except Exception as e:
            if not is_http_error(e):
                raise
            err = error_from_exception(e, resolved)
            _row("problem", f"{type(err).__name__}: {err}")
            return 1
        return worst
    for i, (label, key, model) in enumerate(keys):
        which = tr(f" ({label} key)", f"({label} 密钥)") if len(slots) > 1 else ""
        target = resolved
        if model:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a deprecated model: not what is checked
                target = reg.resolve(provider=name, model=model, base_url=args.base_url)
        try:
            with CampusClient(target, key, timeout=args.timeout) as client:
                ids = client.list_models()
        except CampusLLMError as e:
            worst = 1
            _row("problem", f"{type(e).__name__}{which}: {e}")
            continue
        listed = tr(f"{len(ids)} models listed", f"列出 {len(ids)} 个模型")
        if i == 0:
            _row("reach", tr(f"ok, auth ok{which}, {listed}", f"正常,鉴权正常{which},{listed}"))
            drift = reg.drift(name, ids)
            if drift.missing_in_catalog:
                _row(
                    "drift",
                    tr("gateway has models we don't: ", "网关上有、目录中没有的模型:")
                    + ", ".join(drift.missing_in_catalog),
                )
        else:
            _row("auth", tr(f"ok{which}, {listed}", f"正常{which},{listed}"))
    return worst
