"""The transport's retry policy, redirects and admission, on a scripted inner transport.

Every gateway answer here comes from an ``httpx.MockTransport`` under the real
``CampusTransport``, and every wait goes through a ``ManualClock``: the tests read how long the
transport chose to wait (``clock.slept``) instead of timing it, so they give the same answer
on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from campusllm.clock import ManualClock
from campusllm.errors import (
    BadRequestError,
    CampusLLMError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from campusllm.limiter import RateLimiter, request_charge
from campusllm.registry import resolve
from campusllm.transport import (
    AsyncCampusTransport,
    CampusTransport,
    RetryPolicy,
    error_from_response,
)
from campusllm.transport.retry import MAX_RETRY_AFTER_S, RetryNote, retry_after_seconds

KEY = "sk-test-retry-0123456789"
BASE = "https://gw.example.edu.cn/v1"
RESOLVED = resolve("sjtu:deepseek-chat", base_url=BASE)
BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hello"}]}

Handler = Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers requests in order (the last answer repeats) and records them."""

    def __init__(self, answers: Sequence[httpx.Response | Handler]) -> None:
        self.answers = list(answers)
        self.seen: list[httpx.Request] = []
        self.auth: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        self.auth.append(request.headers.get("authorization"))
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        return answer(request) if callable(answer) else answer


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


OK_BODY = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
OK = _json(200, OK_BODY)


def _client(
    script: Script,
    *,
    retry: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    clock: ManualClock | None = None,
) -> tuple[httpx.Client, ManualClock]:
    clock = clock or ManualClock()
    transport = CampusTransport(
        RESOLVED.provider,
        SecretStr(KEY),
        inner=httpx.MockTransport(script),
        retry=retry or RetryPolicy(max_retries=3),
        limiter=limiter,
        resolved=RESOLVED,
        clock=clock,
    )
    return httpx.Client(transport=transport), clock


def _post(client: httpx.Client) -> httpx.Response:
    return client.post(BASE + "/chat/completions", json=BODY)


def _error(response: httpx.Response) -> CampusLLMError:
    return error_from_response(response, RESOLVED)


# ----------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(
    "value", ["0", "-5", "soon", "0.0", "nan", "Thu, 01 Jan 1970 00:00:00 GMT"]
)
def test_retry_after_without_a_usable_wait_backs_off_like_no_header(value: str) -> None:
    script = Script([_json(429, {"error": "slow down"}, {"Retry-After": value}), OK])
    client, clock = _client(script)
    assert _post(client).status_code == 200
    assert len(script.seen) == 2
    # the jittered backoff of the first retry (0.25–0.5 s), never an immediate resend
    assert len(clock.slept) == 1 and 0.25 <= clock.slept[0] <= 0.5


def test_a_usable_retry_after_is_waited_exactly() -> None:
    script = Script([_json(429, {"error": "slow down"}, {"Retry-After": "7"}), OK])
    client, clock = _client(script)
    assert _post(client).status_code == 200
    assert clock.slept == [7.0]


def test_litellm_router_wait_is_read() -> None:
    assert retry_after_seconds({"llm_provider-retry-after": "60"}) == 60.0
    assert retry_after_seconds({"llm_provider-retry-after-ms": "1500"}) == 1.5
    # the gateway's own header wins over the forwarded upstream one
    assert retry_after_seconds({"retry-after": "3", "llm_provider-retry-after": "60"}) == 3.0
    script = Script([_json(429, {"error": "router"}, {"llm_provider-retry-after": "12"}), OK])
    client, clock = _client(script)
    assert _post(client).status_code == 200 and clock.slept == [12.0]


@pytest.mark.parametrize("header", ["Retry-After", "llm_provider-retry-after"])
def test_a_wait_longer_than_the_cap_fails_at_once_saying_how_long(header: str) -> None:
    script = Script([_json(429, {"error": {"message": "quota"}}, {header: "3600"})])
    client, clock = _client(script)
    response = _post(client)
    assert len(script.seen) == 1 and clock.slept == []
    err = _error(response)
    assert isinstance(err, RateLimitError) and err.retry_after == 3600.0
    text = str(err)
    assert "3600 s (1 h)" in text and "after retries" not in text and "not resent" in text
    assert 3600 > MAX_RETRY_AFTER_S


def test_exhausted_429s_say_how_many_retries() -> None:
    script = Script([_json(429, {"error": "slow down"}, {"Retry-After": "1"})])
    client, _ = _client(script, retry=RetryPolicy(max_retries=2))
    err = _error(_post(client))
    assert isinstance(err, RateLimitError) and "after 2 retries" in str(err)
    assert len(script.seen) == 3


def test_a_429_without_retries_allowed_does_not_claim_retries() -> None:
    script = Script([_json(429, {"error": "slow down"})])
    client, _ = _client(script, retry=RetryPolicy(max_retries=0))
    err = _error(_post(client))
    assert isinstance(err, RateLimitError) and "retr" not in err.message


# ----------------------------------------------------------------------------- 429 and the limiter


def test_a_429_without_retry_after_waits_for_the_keys_window_to_clear() -> None:
    # 10 requests per 60 s; the gateway answers 429 with no Retry-After: the retry must wait
    # until everything in the gateway's window has left it, not 0.25 s.
    clock = ManualClock()
    limiter = RateLimiter(rpm=10, tpm=None, window_s=60.0, clock=clock)
    sent_at: list[float] = []

    def record(answer: httpx.Response) -> Handler:
        def reply(request: httpx.Request) -> httpx.Response:
            sent_at.append(clock.monotonic())
            return answer

        return reply

    script = Script([record(_json(429, {"error": "slow down"})), record(OK)])
    client, _ = _client(script, limiter=limiter, clock=clock)
    assert _post(client).status_code == 200
    assert len(sent_at) == 2 and sent_at[1] - sent_at[0] >= 60.0


def test_the_retry_budget_spans_more_than_two_windows_of_429s() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rpm=10, tpm=None, window_s=60.0, clock=clock)
    script = Script([_json(429, {"error": "slow down"})] * 3 + [OK])
    client, _ = _client(script, limiter=limiter, clock=clock)
    assert _post(client).status_code == 200
    assert clock.monotonic() >= 3 * 60.0  # three windows waited out, then the answer


def test_without_a_limiter_a_429_storm_keeps_exponential_backoff() -> None:
    script = Script([_json(429, {"error": "slow down"})] * 3 + [OK])
    client, clock = _client(script)
    assert _post(client).status_code == 200
    assert len(clock.slept) == 3
    for attempt, waited in enumerate(clock.slept):
        cap = 0.5 * 2**attempt
        assert cap / 2 <= waited <= cap


def test_admission_charges_input_plus_expected_output_then_the_usage_the_body_reports() -> None:
    clock = ManualClock()
    limiter = RateLimiter(rpm=None, tpm=100_000, window_s=60.0, clock=clock)
    body = {**BODY, "max_tokens": 300}
    answer = {**OK_BODY, "usage": {"prompt_tokens": 5, "completion_tokens": 7}}

    class Streamed(httpx.SyncByteStream):  # as off a socket (a json= response is read at once)
        def __iter__(self) -> Iterator[bytes]:
            yield json.dumps(answer).encode()

    reply = httpx.Response(200, headers={"content-type": "application/json"}, stream=Streamed())
    client, _ = _client(Script([reply]), limiter=limiter, clock=clock)

    def charged() -> list[tuple[str, int]]:
        rows = limiter.store.ledger_rows()
        return sorted({(r.model, r.tokens) for r in rows if r.kind == "week"})

    request = client.build_request("POST", BASE + "/chat/completions", json=body)
    response = client.send(request, stream=True)  # admitted; the body not read yet
    [(model, tokens)] = charged()
    assert model == RESOLVED.model.id
    assert tokens == request_charge(tokens - 300, body) and tokens > 300  # input + max_tokens
    response.read()  # the body ends: settled with what the gateway counted
    response.close()
    assert charged() == [(RESOLVED.model.id, 12)]


# ----------------------------------------------------------------------------- 408 and 5xx


def test_a_gateway_408_is_retried_once_then_is_a_timeout_that_says_the_model_is_slow() -> None:
    script = Script([_json(408, {"error": {"message": "litellm.Timeout: Request timed out"}})])
    client, _ = _client(script, retry=RetryPolicy(max_retries=6))
    err = _error(_post(client))
    assert len(script.seen) == 2
    assert isinstance(err, TimeoutError) and err.status_code == 408
    assert "slow" in str(err) and "after 1 retry" in str(err)


def test_a_500_that_rejects_the_request_is_not_retried_and_is_a_bad_request() -> None:
    detail = [{"loc": ["body", "messages", 1, "content"], "msg": "Input should be a valid string"}]
    body = {"error": {"message": json.dumps(detail), "type": "internal_server_error"}}
    script = Script([_json(500, body)])
    client, clock = _client(script)
    err = _error(_post(client))
    assert len(script.seen) == 1 and clock.slept == []
    assert isinstance(err, BadRequestError) and err.status_code == 500
    assert "valid string" in str(err) and "overloaded" not in str(err)


def test_an_ordinary_500_is_retried_and_says_so() -> None:
    script = Script([_json(503, {"error": {"message": "upstream overloaded"}})])
    client, _ = _client(script, retry=RetryPolicy(max_retries=2))
    err = _error(_post(client))
    assert isinstance(err, ServerError) and "after 2 retries" in str(err)
    assert len(script.seen) == 3


def test_an_error_response_carries_what_the_transport_did() -> None:
    script = Script([_json(503, {"error": "down"})])
    client, _ = _client(script, retry=RetryPolicy(max_retries=1))
    note = _post(client).extensions["campusllm.retry"]
    assert note == RetryNote(attempts=2, reason="exhausted", retry_after=None)


# ----------------------------------------------------------------------------- redirects


def test_a_same_origin_redirect_is_followed_with_the_key() -> None:
    moved = httpx.Response(307, headers={"Location": "/v2/chat/completions"})
    script = Script([moved, OK])
    client, _ = _client(script)
    assert _post(client).status_code == 200
    assert [str(r.url) for r in script.seen] == [
        BASE + "/chat/completions",
        "https://gw.example.edu.cn/v2/chat/completions",
    ]
    assert script.auth == [f"Bearer {KEY}"] * 2
    assert json.loads(script.seen[1].content) == BODY  # the same body, resent


@pytest.mark.parametrize(
    "location",
    [
        "https://login.example.com/portal?from=api",  # another host
        "http://gw.example.edu.cn/v1/chat/completions",  # another scheme
        "https://gw.example.edu.cn:8443/v1/chat/completions",  # another port
    ],
)
def test_a_redirect_to_another_origin_is_refused_and_the_key_never_goes_there(
    location: str,
) -> None:
    script = Script([httpx.Response(302, headers={"Location": location}), OK])
    client, _ = _client(script)
    with pytest.raises(ProtocolError) as ei:
        _post(client)
    assert len(script.seen) == 1
    text = str(ei.value)
    assert "redirect" in text and location in text and ei.value.status_code == 302


def test_the_sent_request_no_longer_holds_the_key() -> None:
    script = Script([_json(401, {"error": "bad key"})])
    client, _ = _client(script)
    response = _post(client)
    assert script.auth == [f"Bearer {KEY}"]  # sent with it
    assert KEY not in str(response.request.headers.get("authorization"))


# ----------------------------------------------------------------------------- async twin


def test_the_async_transport_follows_the_same_rules() -> None:
    script = Script(
        [
            _json(429, {"error": "slow"}, {"Retry-After": "0"}),
            _json(408, {"error": "slow model"}),
            _json(408, {"error": "slow model"}),
        ]
    )
    clock = ManualClock()
    transport = AsyncCampusTransport(
        RESOLVED.provider,
        SecretStr(KEY),
        inner=httpx.MockTransport(script),
        retry=RetryPolicy(max_retries=6),
        resolved=RESOLVED,
        clock=clock,
    )

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.post(BASE + "/chat/completions", json=BODY)

    response = asyncio.run(call())
    err = _error(response)
    assert isinstance(err, TimeoutError) and err.status_code == 408
    assert len(script.seen) == 3  # the 429, the 408, one retry of the 408
    assert 0.25 <= clock.slept[0] <= 0.5  # Retry-After: 0 backs off
