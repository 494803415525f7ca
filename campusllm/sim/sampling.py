"""What the simulated model puts in tool calls and structured answers.

A model asked to call a tool or answer in a JSON schema fills in values it takes from the
user's words where it can (a quoted name, a capitalised place, a number within bounds), so
the simulator does the same: tests of tool loops and structured output then see plausible,
schema-valid arguments instead of placeholders.

Example:
    >>> sample_from_schema({"type": "object", "properties": {"city": {"type": "string"}}},
    ...                    hint_text="What is the weather in Paris?")
    {'city': 'Paris'}
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["choose_tools", "sample_from_schema"]

_CAPITALISED = re.compile(r"\b([A-Z][a-zA-Z]+(?:\s+[A-Z][a-zA-Z]+)*)")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_QUOTED = re.compile(r"['\"‘“「]([^'\"’”」]{1,80})['\"’”」]")
_INTEGER = re.compile(r"(?<![\w.])-?\d+(?![\w.])")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def _guess_number(hint_text: str, schema: dict[str, Any], integer: bool) -> float | int | None:
    """The first number in the user text that fits the schema's bounds, like a model would."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    for m in (_INTEGER if integer else _NUMBER).findall(hint_text):
        v: float | int = int(m) if integer else float(m)
        if (lo is None or v >= lo) and (hi is None or v <= hi):
            return v
    return None


def _guess_string(hint_text: str, prop: str) -> str:
    """A plausible value for a string argument, taken from the user text where possible."""
    quoted = _QUOTED.findall(hint_text)
    if quoted:  # "create a customer named 'X'": quoted text is what the user wants passed
        return str(quoted[0])
    words = [w for w in _CAPITALISED.findall(hint_text) if not hint_text.startswith(w)]
    if words:
        return words[-1]
    cjk = _CJK_RUN.findall(hint_text)
    if cjk:
        return cjk[0][:3]
    return f"sample {prop}".strip() if prop else "sample"


def sample_from_schema(
    schema: Any, *, hint_text: str = "", prop: str = "", root: Any = None, depth: int = 0
) -> Any:
    """A value valid for a (reasonable subset of) JSON schema.

    Example:
        >>> sample_from_schema({"type": "object", "properties": {"n": {"type": "integer"}},
        ...                     "required": ["n"]})
        {'n': 1}
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return sample_from_schema(
            target, hint_text=hint_text, prop=prop, root=root, depth=depth + 1
        )
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            pick = non_null[0] if non_null else options[0]
            if key == "allOf":
                merged: dict[str, Any] = {}
                for o in options:
                    if isinstance(o, dict):
                        merged.update(o)
                pick = merged
            return sample_from_schema(
                pick, hint_text=hint_text, prop=prop, root=root, depth=depth + 1
            )
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "string"
    if typ == "object":
        props = schema.get("properties") or {}
        out: dict[str, Any] = {}
        for name, sub in props.items():
            out[name] = sample_from_schema(
                sub, hint_text=hint_text, prop=name, root=root, depth=depth + 1
            )
        return out
    if typ == "array":
        n = max(int(schema.get("minItems") or 1), 1)
        item = sample_from_schema(
            schema.get("items") or {}, hint_text=hint_text, prop=prop, root=root, depth=depth + 1
        )
        return [item] * n
    if typ in ("integer", "number"):
        guess = _guess_number(hint_text, schema, typ == "integer")
        if guess is not None:
            return guess
    if typ == "integer":
        lo = schema.get("minimum", schema.get("exclusiveMinimum"))
        return int(lo) + (1 if "exclusiveMinimum" in schema else 0) if lo is not None else 1
    if typ == "number":
        lo = schema.get("minimum")
        return float(lo) if lo is not None else 1.0
    if typ == "boolean":
        return True
    if typ == "null":
        return None
    value = _guess_string(hint_text, prop)
    min_len = schema.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = value + "x" * (min_len - len(value))
    return value


def _tool_function(tool: Any) -> dict[str, Any] | None:
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function") if "function" in tool else tool
    return fn if isinstance(fn, dict) and isinstance(fn.get("name"), str) else None


def choose_tools(
    tools: list[Any], tool_choice: Any, user_text: str, parallel: bool
) -> list[dict[str, Any]]:
    """Functions the simulated model calls: named in the user text, else the first tool."""
    fns = [f for f in (_tool_function(t) for t in tools) if f is not None]
    if not fns or tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        picked = [f for f in fns if f["name"] == wanted]
        if picked:
            return picked[:1]
    low = user_text.lower()
    named = [f for f in fns if f["name"].lower() in low]
    if not named:
        named = fns[:1]
    return named if parallel else named[:1]
