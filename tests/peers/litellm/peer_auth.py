"""LiteLLM custom auth for the conformance tier: fixed keys, no database.

LiteLLM imports this module by path from its config (``general_settings.custom_auth``).

``sk-peer-good``     any model, no key limit
``sk-peer-limited``  a per-key ``rpm_limit`` (LiteLLM answers 429 with ``retry-after``)
anything else        rejected (LiteLLM answers 401)
"""

from __future__ import annotations

import os

from fastapi import Request
from litellm.proxy._types import ProxyErrorTypes, ProxyException, UserAPIKeyAuth

GOOD = "sk-peer-good"
LIMITED = "sk-peer-limited"
LIMITED_RPM = int(os.environ.get("PEER_LIMITED_RPM", "2"))


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    if api_key == GOOD:
        return UserAPIKeyAuth(api_key=api_key, token="peer-good")
    if api_key == LIMITED:
        return UserAPIKeyAuth(api_key=api_key, token="peer-limited", rpm_limit=LIMITED_RPM)
    raise ProxyException(
        message="Authentication Error, Invalid proxy server token passed.",
        type=ProxyErrorTypes.auth_error,
        param="api_key",
        code=401,
    )
