"""Finding a provider's API key without ever printing it.

Order: the explicit ``api_key`` argument, the provider's ``key_env`` variables in order,
``CAMPUSLLM_API_KEY``, then ``[keys]`` in the user's config file. Every key found is
registered with :func:`campusllm.errors.register_secret`, so error messages and logs that
might echo it are scrubbed.

Example:
    >>> import os
    >>> from campusllm.auth import get_api_key
    >>> from campusllm.registry import get_registry
    >>> os.environ["SJTU_API_KEY"] = "sk-example-123456"
    >>> get_api_key(get_registry().provider("sjtu"))
    SecretStr('**********')
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from .errors import AuthenticationError, register_secret
from .registry import ProviderSpec, get_registry

__all__ = ["GENERIC_KEY_ENV", "key_env_names", "get_api_key"]

GENERIC_KEY_ENV = "CAMPUSLLM_API_KEY"


def key_env_names(provider: ProviderSpec) -> list[str]:
    """Env vars searched for ``provider``'s key, in order (``CAMPUSLLM_API_KEY`` last).

    Example:
        >>> from campusllm.registry import get_registry
        >>> key_env_names(get_registry().provider("sjtu"))
        ['SJTU_API_KEY', 'CAMPUSLLM_API_KEY']
    """
    names = list(dict.fromkeys(provider.key_env))
    if GENERIC_KEY_ENV not in names:
        names.append(GENERIC_KEY_ENV)
    return names


def _clean(value: str) -> str:
    value = value.strip().strip("\"'").strip()
    # A key pasted together with its header prefix would be sent as "Bearer Bearer ...".
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value


def get_api_key(provider: ProviderSpec, explicit: str | SecretStr | None = None) -> SecretStr:
    """The key for ``provider``; AuthenticationError naming the env vars when there is none.

    Example:
        >>> from campusllm.registry import get_registry
        >>> get_api_key(get_registry().provider("ecnu"), "sk-abc-123456").get_secret_value()
        'sk-abc-123456'
    """
    if isinstance(explicit, SecretStr):
        explicit = explicit.get_secret_value()
    if explicit is not None and _clean(explicit):
        key = _clean(explicit)
        register_secret(key)
        return SecretStr(key)
    names = key_env_names(provider)
    for name in names:
        value = _clean(os.environ.get(name, ""))
        if value:
            register_secret(value)
            return SecretStr(value)
    stored = get_registry().config_key(provider.name)
    if stored is not None and stored.get_secret_value():
        register_secret(stored.get_secret_value())
        return stored
    first, rest = names[0], names[1:]
    alt = f" (or {', '.join(rest)})" if rest else ""
    raise AuthenticationError(
        f"No API key for provider {provider.name!r}.",
        hint=f"Set {first}{alt}, pass api_key=..., or add it under [keys] in your campusllm "
        "config file.",
        provider=provider.name,
    )
