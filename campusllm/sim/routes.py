"""The routes besides chat: ``/models``, ``/completions``, ``/embeddings`` and both reranks.

Each route validates the request the way the real gateway does (same status, same wording
where the providers' documents show it) and answers through the fault-aware senders of
:mod:`campusllm.sim.faults`.
"""

from __future__ import annotations

from typing import Any, NoReturn

from ..registry import ModelSpec, ProviderSpec
from ..tokens import estimate_tokens
from ..wire.reasoning import CLOSE_TAG, OPEN_TAG
from ..wire.text import prompt_opens_think
from .faults import Fault, send_body, send_events
from .gateways import GATEWAYS, Gateway
from .http import Abort, Handler, error_body
from .replays import fixture_bytes
from .replies import input_tokens, prompt_tokens, text_completion_body, text_completion_events
from .state import SimState
from .vectors import embed_text, encode_embedding, lexical_score

__all__ = ["check_context", "completions", "embeddings", "lookup_model", "models", "rerank"]

_API_NAMES = {"chat": "chat completions", "embedding": "embeddings", "rerank": "rerank"}
_API_ROUTES = ("/chat/completions", "/completions", "/embeddings", "/tei/rerank", "/rerank")
_VLLM = GATEWAYS["vllm"]
# vLLM's answer to a chat request for a model whose tokenizer has no chat template
_NO_CHAT_TEMPLATE = (
    "As of transformers v4.44, default chat template is no longer allowed, so you must provide "
    "a chat template if the tokenizer does not define one."
)


def lookup_model(
    h: Handler,
    provider: ProviderSpec,
    name: Any,
    kind: str,
    gateway: Gateway = _VLLM,
    *,
    endpoint: str = "chat",
) -> ModelSpec:
    """The catalogued model ``name`` of ``kind``, or answer 400/404 as ``gateway`` would.

    A completion-only model (``endpoint = "completions"``) asked for chat gets vLLM's 400 for a
    model without a chat template; ``/completions`` serves every generative model, as vLLM does.
    """
    if not isinstance(name, str) or not name:
        h.send_json(400, error_body("you must provide a model parameter", param="model"))
        raise Abort
    spec = provider.find_model(name)
    if spec is None and not provider.models:
        # a provider without a catalog (custom) serves whatever model it is asked for
        spec = ModelSpec.model_validate(
            dict(
                id=name,
                kind=kind,
                tools=True,
                parallel_tools=True,
                vision=True,
                json_schema=True,
                json_mode=True,
            )
        )
    if spec is None:
        path = h.path.split("?", 1)[0].rstrip("/")
        route = next((r for r in _API_ROUTES if path.endswith(r)), path)
        h.send_json(*gateway.unknown_model(route, name, provider.name))
        raise Abort
    if spec.kind != kind:
        h.send_json(
            400,
            error_body(
                f"The model `{name}` is a {spec.kind} model and does not support the "
                f"{_API_NAMES[kind]} API."
            ),
        )
        raise Abort
    if endpoint == "chat" and spec.endpoint == "completions":
        h.send_json(400, error_body(_NO_CHAT_TEMPLATE))
        raise Abort
    return spec


def models(h: Handler, provider: ProviderSpec) -> None:
    """``GET /models``: SJTU's documented list, else every catalogued id and alias."""
    if provider.name == "sjtu":
        return h.send_bytes(200, fixture_bytes("sjtu_models"))
    data = []
    seen: set[str] = set()
    for m in provider.models:
        for mid in (m.id, *m.aliases):
            if mid not in seen:
                seen.add(mid)
                data.append(
                    {"id": mid, "object": "model", "created": 1700000000, "owned_by": provider.name}
                )
    h.send_json(200, {"object": "list", "data": data})


def check_context(
    h: Handler, spec: ModelSpec, name: str, body: dict[str, Any], gateway: Gateway
) -> None:
    """Refuse (400, as ``gateway`` words it) a request longer than the model's context window.

    vLLM counts the prompt plus ``max_tokens``; llama-server the prompt alone.
    """
    if not spec.context_window:
        return
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    completion = limit if isinstance(limit, int) and limit > 0 else None
    refusal = gateway.context_overflow(name, spec.context_window, prompt_tokens(body), completion)
    if refusal is not None:
        h.send_json(*refusal)
        raise Abort


def completions(
    state: SimState,
    h: Handler,
    provider: ProviderSpec,
    body: dict[str, Any],
    fault: Fault | None,
    gateway: Gateway = _VLLM,
) -> int:
    """``POST /completions``: vLLM's text completion (MaaS platforms serve it beside chat).

    No chat template is applied: a reasoning model continues the prompt with its thinking
    (``<think>`` opened by the prompt or by the model itself, then ``</think>``); ``stop``
    strings end the text before them and ``max_tokens`` cuts it (``finish_reason: length``).
    Returns the tokens of the answer sent (0 when none was).
    """
    name = str(body.get("model", ""))
    spec = lookup_model(h, provider, name, "chat", gateway, endpoint="completions")
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        prompt = "\n".join(p for p in prompt if isinstance(p, str))
    if not isinstance(prompt, str):
        h.send_json(400, error_body("prompt must be a string or a list of strings", param="prompt"))
        return 0
    check_context(h, spec, name, body, gateway)
    sim_opts = body.get("sim") if isinstance(body.get("sim"), dict) else {}
    assert isinstance(sim_opts, dict)
    scripted = state.take_script([name, spec.id])
    if scripted is not None:
        text = str(scripted.get("content") or "")
        sim_opts = {**sim_opts, **{k: v for k, v in scripted.items() if k == "chunks"}}
    else:
        text = _continuation(spec, prompt)
    text, finish = _stop_and_cut(text, body)
    if scripted is not None and scripted.get("finish_reason"):
        finish = str(scripted["finish_reason"])
    cid = state.next_id("cmpl")
    ptoks = prompt_tokens(body)
    if body.get("stream"):
        events = text_completion_events(
            text=text,
            model=name,
            id=cid,
            prompt_tokens=ptoks,
            chunks=sim_opts.get("chunks"),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            finish_reason=finish,
        )
        send_events(h, events, fault, gateway=gateway)
    else:
        out = text_completion_body(
            text=text, model=name, id=cid, prompt_tokens=ptoks, finish_reason=finish
        )
        send_body(h, out, fault)
    return estimate_tokens(text) if text else 0


def _continuation(spec: ModelSpec, prompt: str) -> str:
    # the prompt's own think tags are not echoed: they would open or close the model's
    tail = " ".join(prompt.replace(OPEN_TAG, " ").replace(CLOSE_TAG, " ").split())[-120:]
    answer = f" Simulated completion of: {tail}"
    if not spec.reasoning.default_on:
        return answer
    opened = "" if prompt_opens_think(prompt) else "<think>\n"
    return f"{opened}Simulated reasoning about: {tail}\n</think>\n\n{answer.strip()}"


def _stop_and_cut(text: str, body: dict[str, Any]) -> tuple[str, str]:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if isinstance(stop, list) else []
    found = [i for i in (text.find(s) for s in stops if isinstance(s, str) and s) if i >= 0]
    if found:
        return text[: min(found)], "stop"
    limit = body.get("max_tokens")
    if isinstance(limit, int) and limit > 0 and estimate_tokens(text) > limit:
        while text and estimate_tokens(text) > limit:
            text = text[: max(0, min(len(text) - 1, int(len(text) * 0.9)))]
        return text, "length"
    return text, "stop"


def _bad_input(h: Handler, message: str) -> NoReturn:
    h.send_json(400, error_body(message, param="input"))
    raise Abort


def _embedding_texts(h: Handler, inp: Any) -> list[str]:
    if isinstance(inp, str):
        texts = [inp]
    elif isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
        texts = [" ".join(map(str, inp))]  # one pre-tokenised input
    elif isinstance(inp, list) and all(isinstance(x, (str, list)) for x in inp):
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inp]
    else:
        _bad_input(h, "input must be a string or a list of strings")
    if not texts:
        _bad_input(h, "input must not be empty")
    return texts


def embeddings(
    h: Handler,
    provider: ProviderSpec,
    body: dict[str, Any],
    fault: Fault | None,
    gateway: Gateway = _VLLM,
) -> None:
    """``POST /embeddings``: deterministic unit vectors, within the provider's batch limits."""
    name = str(body.get("model", ""))
    spec = lookup_model(h, provider, name, "embedding", gateway)
    texts = _embedding_texts(h, body.get("input"))
    limit = (
        min(x for x in (provider.embedding_batch, spec.max_batch) if x)
        if (provider.embedding_batch or spec.max_batch)
        else None
    )
    if limit and len(texts) > limit:
        _bad_input(h, f"batch size {len(texts)} exceeds the limit of {limit} inputs per request")
    counts = [estimate_tokens(t) if t else 0 for t in texts]
    if spec.max_input_tokens:
        for i, n in enumerate(counts):
            if n > spec.max_input_tokens:
                _bad_input(
                    h,
                    f"input {i} has {n} tokens, more than the model's maximum of "
                    f"{spec.max_input_tokens} tokens",
                )
    batch_tokens = provider.embedding_batch_tokens
    if batch_tokens and len(texts) > 1 and sum(counts) > batch_tokens:
        _bad_input(
            h,
            f"batch has {sum(counts)} tokens, more than the limit of "
            f"{batch_tokens} tokens per request",
        )
    native = spec.dimensions or 1024
    dims = body.get("dimensions") or native
    if not isinstance(dims, int) or dims < 1 or (spec.dimensions and dims > spec.dimensions):
        h.send_json(
            400, error_body(f"dimensions must be between 1 and {native}", param="dimensions")
        )
        return
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        h.send_json(
            400,
            error_body("encoding_format must be 'float' or 'base64'", param="encoding_format"),
        )
        return
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": encode_embedding(embed_text(spec.id, t, dims), fmt),
        }
        for i, t in enumerate(texts)
    ]
    total = sum(counts)
    usage = {"prompt_tokens": total, "total_tokens": total}
    send_body(h, {"object": "list", "data": data, "model": name, "usage": usage}, fault)


def rerank(
    state: SimState,
    h: Handler,
    provider: ProviderSpec,
    body: dict[str, Any],
    *,
    tei: bool,
    fault: Fault | None,
    gateway: Gateway = _VLLM,
) -> None:
    """``POST /rerank`` (Jina/Cohere shape) or ``/tei/rerank`` (TEI shape): lexical scores."""
    name = body.get("model")
    if not name and tei:
        name = next(
            (m.id for m in provider.models if m.kind == "rerank" and m.rerank_shape == "tei"),
            None,
        ) or next((m.id for m in provider.models if m.kind == "rerank"), None)
        if name is None and not provider.models:
            name = "rerank"
    spec = lookup_model(h, provider, name, "rerank", gateway)
    tei = tei or (spec.rerank_shape == "tei" and "texts" in body)
    query = body.get("query")
    raw_docs = body.get("texts") if tei else body.get("documents")
    if not isinstance(query, str) or not isinstance(raw_docs, list):
        need = "texts" if tei else "documents"
        h.send_json(400, error_body(f"query (string) and {need} (list) are required"))
        return
    docs = [d if isinstance(d, str) else str((d or {}).get("text", "")) for d in raw_docs]
    if spec.max_documents and len(docs) > spec.max_documents:
        h.send_json(
            400,
            error_body(
                f"{len(docs)} documents exceed the limit of {spec.max_documents} per request"
            ),
        )
        return
    scored = sorted(
        ((i, lexical_score(query, d)) for i, d in enumerate(docs)),
        key=lambda x: (-x[1], x[0]),
    )
    top_n = body.get("top_n")
    if isinstance(top_n, int) and top_n >= 0:
        scored = scored[:top_n]
    tokens = input_tokens(body)
    if tei:
        out: Any = [
            {"index": i, "score": s, **({"text": docs[i]} if body.get("return_text") else {})}
            for i, s in scored
        ]
        return send_body(h, out, fault)
    results = []
    for i, s in scored:
        item: dict[str, Any] = {"index": i, "relevance_score": s}
        if body.get("return_documents"):
            item["document"] = {"text": docs[i]}
        results.append(item)
    send_body(
        h,
        {
            "id": state.next_id("rerank"),
            "model": name,
            "results": results,
            "usage": {"total_tokens": tokens},
        },
        fault,
    )
