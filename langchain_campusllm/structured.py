"""Structured output with a ``json_schema`` response format, parsed after reasoning is split.

langchain-openai's own json_schema path hands the raw content to the SDK's parser, think
tags included; here the content is already clean, so ordinary output parsers suffice.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Protocol

from langchain_core.language_models import LanguageModelInput
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.function_calling import convert_to_openai_function
from langchain_core.utils.pydantic import is_basemodel_subclass

from .convert import response_format_dict

__all__ = ["json_schema_runnable"]


class _Bindable(Protocol):
    def bind(self, **kwargs: Any) -> Runnable[LanguageModelInput, Any]: ...

    def bind_tools(
        self, tools: Any, *, strict: bool | None = None, **kwargs: Any
    ) -> Runnable[LanguageModelInput, Any]: ...


def json_schema_runnable(
    llm: _Bindable,
    schema: Any,
    *,
    include_raw: bool,
    strict: bool | None,
    tools: list[Any] | None,
    **kwargs: Any,
) -> Runnable[LanguageModelInput, Any]:
    """``llm`` bound to a ``json_schema`` response format, piped into a parser for ``schema``.

    Example:
        >>> from pydantic import BaseModel
        >>> class City(BaseModel):
        ...     name: str
        >>> runnable = json_schema_runnable(llm, City, include_raw=False, strict=None,
        ...                                 tools=None)  # doctest: +SKIP
    """
    if schema is None:
        raise ValueError("schema must be specified when method is 'json_schema'.")
    is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
    bind_kwargs: dict[str, Any] = {
        "response_format": response_format_dict(schema, strict),
        "ls_structured_output_format": {
            "kwargs": {"method": "json_schema", "strict": strict},
            "schema": convert_to_openai_function(schema),
        },
        **kwargs,
    }
    bound: Runnable[LanguageModelInput, Any]
    if tools:
        bound = llm.bind_tools(tools, strict=strict, **bind_kwargs)
    else:
        bound = llm.bind(**bind_kwargs)
    parser: Runnable[Any, Any] = (
        PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
    )
    if include_raw:
        parser_assign = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        parser_none = RunnablePassthrough.assign(parsed=lambda _: None)
        fallback = parser_assign.with_fallbacks([parser_none], exception_key="parsing_error")
        return RunnableMap(raw=bound) | fallback
    return bound | parser
