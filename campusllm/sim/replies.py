"""What the simulator answers: default replies, schema samples, SSE rendering, vectors, scores.

Pure functions without I/O so the server module only deals with HTTP. Everything here is
deterministic for a given request (ids come from a counter the server passes in).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

from ..tokens import estimate_tokens

__all__ = [
    "DONE",
    "SHAPES",
    "Reply",
    "SimToolCall",
    "choose_tools",
    "completion_body",
    "embed_text",
    "encode_embedding",
    "input_tokens",
    "lexical_score",
    "message_text",
    "prompt_tokens",
    "sample_from_schema",
    "split_pieces",
    "stream_events",
    "text_completion_body",
    "text_completion_events",
]

# Reasoning shapes the renderer knows; "think_open" is think_tags with the opening tag already
# emitted by the chat template (only "</think>" reaches the client).
SHAPES = ("none", "reasoning_content", "reasoning", "think_tags", "think_open")


@dataclass
class SimToolCall:
    """One tool call the simulated model makes.

    Example:
        >>> SimToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}').name
        'get_weather'
    """

    id: str
    name: str
    arguments: str  # raw JSON text, as on the wire


@dataclass
class Reply:
    """A complete assistant turn before it is rendered as JSON or SSE.

    Example:
        >>> r = Reply(content="hi", model="m", id="chatcmpl-1")
        >>> completion_body(r, prompt_tokens=3)["choices"][0]["message"]["content"]
        'hi'
    """

    content: str
    model: str
    id: str
    reasoning: str = ""
    shape: str = "reasoning_content"
    tool_calls: list[SimToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    chunks: int | None = None  # ~number of content/reasoning chunks when streamed
    delay_s: float = 0.0  # pause between streamed chunks
    created: int = 0

    def __post_init__(self) -> None:
        if not self.created:
            self.created = int(time.time())
        if self.finish_reason is None:
            self.finish_reason = "tool_calls" if self.tool_calls else "stop"

    def completion_tokens(self) -> int:
        n = 0
        for part in (self.content, self.reasoning, *(t.arguments for t in self.tool_calls)):
            if part:
                n += estimate_tokens(part)
        return n

    def reasoning_tokens(self) -> int:
        return estimate_tokens(self.reasoning) if self.reasoning else 0


# --------------------------------------------------------------------------- requests


def message_text(content: Any) -> str:
    """Text of an OpenAI message ``content`` (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
        return "\n".join(parts)
    return ""


def prompt_tokens(body: dict[str, Any]) -> int:
    """Tokens a chat request costs against TPM: the text of every message (and tool calls)."""
    total = 0
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        text = message_text(m.get("content"))
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict):
                text += str(fn.get("name", "")) + str(fn.get("arguments", ""))
        if text:
            total += estimate_tokens(text)
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        total += estimate_tokens(prompt)
    elif isinstance(prompt, list):
        total += sum(estimate_tokens(p) for p in prompt if isinstance(p, str) and p)
    return max(total, 1)


def input_tokens(body: Any) -> int:
    """Tokens an embedding or rerank request costs against TPM: its inputs, query, documents."""
    if not isinstance(body, dict):
        return 0
    texts: list[str] = []
    inp = body.get("input")
    if isinstance(inp, str):
        texts.append(inp)
    elif isinstance(inp, list):
        texts.extend(x for x in inp if isinstance(x, str))
    if isinstance(body.get("query"), str):
        texts.append(body["query"])
    for d in body.get("documents") or body.get("texts") or []:
        texts.append(d if isinstance(d, str) else str((d or {}).get("text", "")))
    return sum(estimate_tokens(t) for t in texts if t)


# --------------------------------------------------------------------------- tools and schemas

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


# --------------------------------------------------------------------------- rendering


def completion_body(reply: Reply, *, prompt_tokens: int) -> dict[str, Any]:
    """A non-streamed ``chat.completion`` with reasoning in ``reply.shape``."""
    message: dict[str, Any] = {"role": "assistant"}
    content = reply.content
    if reply.reasoning and reply.shape == "think_tags":
        content = f"<think>\n{reply.reasoning}</think>\n\n{content}"
    elif reply.reasoning and reply.shape == "think_open":
        content = f"{reply.reasoning}</think>\n\n{content}"
    message["content"] = content if (content or not reply.tool_calls) else None
    if reply.shape == "reasoning_content" and reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    elif reply.shape == "reasoning" and reply.reasoning:
        message["reasoning"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for t in reply.tool_calls
        ]
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage_body(reply, prompt_tokens),
    }


def usage_body(reply: Reply, prompt_tokens: int) -> dict[str, Any]:
    completion = reply.completion_tokens()
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    if reply.reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens()}
    return usage


def split_pieces(text: str, n: int) -> list[str]:
    """``text`` cut into about ``n`` pieces (never empty pieces)."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = len(text) / n
    cuts = [round(i * size) for i in range(n + 1)]
    return [text[cuts[i] : cuts[i + 1]] for i in range(n) if cuts[i] < cuts[i + 1]]


_DEFAULT_PIECE = 6  # chars per streamed piece: small enough that tags straddle chunks
_FILLER = " The simulator pads this answer so the stream has the requested number of chunks."


def _event(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def _plan(reply: Reply) -> tuple[list[str], list[str]]:
    """Reasoning pieces and content pieces (think tags already folded into content)."""
    reasoning, content = reply.reasoning, reply.content
    if reasoning and reply.shape == "think_tags":
        content, reasoning = f"<think>\n{reasoning}</think>\n\n{content}", ""
    elif reasoning and reply.shape == "think_open":
        content, reasoning = f"{reasoning}</think>\n\n{content}", ""
    elif reply.shape == "none":
        reasoning = ""
    total = len(reasoning) + len(content)
    if reply.chunks:
        want = max(1, reply.chunks)
        if not reply.tool_calls and total < want:
            pad = (_FILLER * (1 + (want - total) // len(_FILLER)))[: want - total]
            content += pad
            reply.content += pad
            total = want
        if total == 0:
            return [], []
        n_r = round(want * len(reasoning) / total) if reasoning else 0
        if reasoning:
            n_r = max(1, n_r)
        n_c = max(1, want - n_r) if content else 0
    else:
        n_r = math.ceil(len(reasoning) / _DEFAULT_PIECE)
        n_c = math.ceil(len(content) / _DEFAULT_PIECE)
    return split_pieces(reasoning, n_r), split_pieces(content, n_c)


def stream_events(
    reply: Reply, *, include_usage: bool, prompt_tokens: int, done: bool = True
) -> list[bytes]:
    """Every SSE event of a streamed chat completion, ``data: [DONE]`` last."""
    base = {"id": reply.id, "object": "chat.completion.chunk", "created": reply.created}
    base["model"] = reply.model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _event(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        )

    r_key = "reasoning" if reply.shape == "reasoning" else "reasoning_content"
    r_pieces, c_pieces = _plan(reply)
    events = [chunk({"role": "assistant", "content": ""})]
    events.extend(chunk({r_key: p}) for p in r_pieces)
    events.extend(chunk({"content": p}) for p in c_pieces)
    events.extend(_tool_call_events(reply, chunk))
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        events.append(_event({**base, "choices": [], "usage": usage_body(reply, prompt_tokens)}))
    if done:
        events.append(DONE)
    return events


def _tool_call_events(reply: Reply, chunk: Any) -> list[bytes]:
    """Tool calls streamed by index: id+name first, arguments in fragments.

    The last fragment of one call and the header of the next share a chunk, as vLLM does
    for parallel calls, so clients must assemble by ``index`` rather than by chunk.
    """
    events: list[bytes] = []
    carry: list[dict[str, Any]] = []
    for i, tc in enumerate(reply.tool_calls):
        head = {
            "index": i,
            "id": tc.id,
            "type": "function",
            "function": {"name": tc.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [*carry, head]}))
        carry = []
        frags = split_pieces(tc.arguments, max(2, min(4, len(tc.arguments))))
        for frag in frags[:-1]:
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}))
        if frags:
            carry = [{"index": i, "function": {"arguments": frags[-1]}}]
    if carry:
        events.append(chunk({"tool_calls": carry}))
    return events


def text_completion_body(
    *, text: str, model: str, id: str, prompt_tokens: int, finish_reason: str = "stop"
) -> dict[str, Any]:
    """A non-streamed legacy ``text_completion`` (MaaS ``/v1/completions``)."""
    completion = estimate_tokens(text) if text else 0
    return {
        "id": id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        },
    }


def text_completion_events(
    *, text: str, model: str, id: str, prompt_tokens: int, chunks: int | None, include_usage: bool
) -> list[bytes]:
    created = int(time.time())
    n = chunks or math.ceil(len(text) / _DEFAULT_PIECE)
    events = []
    base = {"id": id, "object": "text_completion", "created": created, "model": model}
    for piece in split_pieces(text, n):
        events.append(
            _event(
                {
                    **base,
                    "choices": [
                        {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
                    ],
                }
            )
        )
    events.append(
        _event(
            {
                **base,
                "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}],
            }
        )
    )
    if include_usage:
        body = text_completion_body(text=text, model=model, id=id, prompt_tokens=prompt_tokens)
        events.append(_event({**base, "choices": [], "usage": body["usage"]}))
    events.append(DONE)
    return events


# --------------------------------------------------------------------------- embeddings, rerank

_WORD = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]", re.IGNORECASE)
_STOP = frozenset(
    "a an the is are was were be of in on at to for and or but does do did how what which who "
    "why when where with by from as it its this that these those i you we they".split()
)


def terms(text: str) -> list[str]:
    """Lower-cased word / CJK-character terms with a crude plural strip, stop words removed."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP:
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.append(w)
    return out


def embed_text(model: str, text: str, dims: int) -> list[float]:
    """A deterministic unit vector for ``(model, text)``.

    Feature hashing of the text's terms and term pairs plus a small per-text component, so
    identical texts give identical vectors while texts sharing words are closer than unrelated
    ones (useful for demos of similarity search).
    """
    vec = [0.0] * dims
    ts = terms(text)
    features = ts + [a + " " + b for a, b in zip(ts, ts[1:], strict=False)]
    for f in features:
        h = hashlib.blake2b(f"{model}\x00{f}".encode(), digest_size=8).digest()
        idx = int.from_bytes(h[:4], "little") % dims
        vec[idx] += 1.0 if h[4] & 1 else -1.0
    noise = array("h")
    noise.frombytes(hashlib.shake_256(f"{model}\x01{text}".encode()).digest(2 * dims))
    scale = (0.35 if features else 1.0) / 32768.0 * math.sqrt(max(len(features), 1) / dims)
    vec = [v + n * scale for v, n in zip(vec, noise, strict=True)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def encode_embedding(vec: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
    return vec


def lexical_score(query: str, doc: str) -> float:
    """Relevance in [0, 1): share of query terms found in the document, squashed."""
    q = terms(query)
    if not q:
        return 0.0
    d = set(terms(doc))
    hits = sum(1 for t in q if t in d)
    coverage = hits / len(q)
    # tiny deterministic tie-breaker so equal-coverage documents still get distinct scores
    tb = int.from_bytes(hashlib.blake2b(doc.encode(), digest_size=2).digest(), "little") / 6.6e6
    return round(min(0.999, 0.02 + 0.95 * coverage + tb), 6)
