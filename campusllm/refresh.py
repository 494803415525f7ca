"""Refreshing the catalog from a gateway's live ``/models`` list (a network call).

Kept out of the registry on purpose: the registry is data and rules, and a call over the
network needs the client, which needs the registry.

Example:
    >>> drift = refresh_from_gateway("sjtu")  # doctest: +SKIP
    >>> drift.missing_in_catalog  # now resolvable: resolve("sjtu:<new id>")  # doctest: +SKIP
"""

from __future__ import annotations

from pydantic import SecretStr

from .client import CampusClient
from .registry import Drift, get_registry

__all__ = ["refresh_from_gateway"]


def refresh_from_gateway(
    provider: str, *, api_key: str | SecretStr | None = None, base_url: str | None = None
) -> Drift:
    """Fetch ``GET /models`` from ``provider``'s gateway and merge it into the registry.

    New ids become catalog entries (so they resolve without an "unknown model" warning);
    the returned :class:`~campusllm.registry.Drift` lists what differs.
    """
    reg = get_registry()
    resolved = reg.resolve_provider(provider, base_url)
    with CampusClient(resolved, api_key) as client:
        live = client.list_models()
    return reg.merge_live(provider, live)
