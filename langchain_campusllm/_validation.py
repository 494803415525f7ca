"""pydantic's wrapper taken off the campusllm errors raised inside the classes' validators."""

from __future__ import annotations

from pydantic import ValidationError

from campusllm.errors import CampusLLMError


def raise_campus_error(e: ValidationError) -> None:
    """Re-raise the campusllm error pydantic wrapped while running a validator, if any."""
    for err in e.errors():
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, CampusLLMError):
            raise inner from None
