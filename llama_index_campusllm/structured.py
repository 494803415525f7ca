"""Structured output with a ``json_schema`` response format, for the LlamaIndex LLM.

LlamaIndex picks a structured-output program by whether the LLM calls functions: tool calls
when it does, a text prompt and a parser when it does not. Campus gateways often serve models
whose server enforces a JSON schema (vLLM guided decoding, llama.cpp grammars) but that have no
tool calling; for them, and wherever the user asks for it, :class:`~llama_index_campusllm.CampusLLM`
sends ``response_format`` ``json_schema`` instead and parses the answer with LlamaIndex's own
text-completion program (reasoning is already split off, so the content is the JSON alone).
Which method a model gets is the core capability policy's
(:func:`campusllm.capabilities.structured_output_method`).

Example:
    >>> from pydantic import BaseModel
    >>> class Person(BaseModel):
    ...     name: str
    ...     age: int
    >>> fmt = response_format(Person)
    >>> fmt["type"], fmt["json_schema"]["name"], sorted(fmt["json_schema"]["schema"]["properties"])
    ('json_schema', 'Person', ['age', 'name'])
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.llm import LLM
from llama_index.core.output_parsers.pydantic import PydanticOutputParser
from llama_index.core.program.llm_program import LLMTextCompletionProgram
from llama_index.core.program.utils import process_streaming_objects
from llama_index.core.prompts.base import BasePromptTemplate
from llama_index.core.types import Model
from pydantic import BaseModel

from campusllm.capabilities import structured_output_method, supports_function_calling
from campusllm.registry import ResolvedModel

__all__ = ["response_format", "uses_json_schema", "JsonSchemaProgram", "json_schema_program"]


def response_format(output_cls: type[BaseModel]) -> dict[str, Any]:
    """The OpenAI ``json_schema`` response format for a pydantic class."""
    return {
        "type": "json_schema",
        "json_schema": {"name": output_cls.__name__, "schema": output_cls.model_json_schema()},
    }


def uses_json_schema(resolved: ResolvedModel, method: str | None) -> bool:
    """Whether structured output goes through ``response_format`` json_schema.

    ``method`` None: function calling where the model calls tools, else json_schema where the
    registry says the model supports it (else LlamaIndex's text prompt and parser). A method
    asked for explicitly goes through the capability policy: it falls back, with a warning, to
    one the model has, or raises :class:`~campusllm.errors.CapabilityError` when it has none.

    Example:
        >>> from campusllm.registry import resolve
        >>> uses_json_schema(resolve("sjtu:deepseek-chat"), None)
        False
    """
    if method is None:
        return not supports_function_calling(resolved) and resolved.model.json_schema
    return structured_output_method(resolved, method) == "json_schema"


class JsonSchemaProgram(LLMTextCompletionProgram[Model]):
    """LlamaIndex's text-completion program, asking for ``response_format`` json_schema.

    Streams yield LlamaIndex's partial objects as the JSON arrives, and then the whole answer
    parsed and validated: the last object of a stream is never a partial one (LlamaIndex's
    repair of half-JSON counts braces inside strings too, and can stop short).

    Example:
        >>> program = JsonSchemaProgram.from_defaults(  # doctest: +SKIP
        ...     output_cls=Person, prompt=PromptTemplate("Ann, 31"), llm=llm)
        >>> program()  # doctest: +SKIP
        Person(name='Ann', age=31)
    """

    def _kwargs(self, llm_kwargs: dict[str, Any] | None) -> dict[str, Any]:
        return {**(llm_kwargs or {}), "response_format": response_format(self._output_cls)}

    def _messages(self, **kwargs: Any) -> list[ChatMessage]:
        messages = self._prompt.format_messages(llm=self._llm, **kwargs)
        return self._llm._extend_messages(messages)

    def __call__(
        self, llm_kwargs: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Model:
        return super().__call__(self._kwargs(llm_kwargs), *args, **kwargs)

    async def acall(
        self, llm_kwargs: dict[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> Model:
        return await super().acall(self._kwargs(llm_kwargs), *args, **kwargs)

    def _partial(self, resp: ChatResponse, cur: list[Any] | None) -> Any:
        try:
            return process_streaming_objects(
                resp, self._output_cls, cur_objects=cur, flexible_mode=True, llm=self._llm
            )
        except ValueError:  # not enough of the JSON yet
            return None

    def _final(self, last: ChatResponse | None, cur: list[Any] | None) -> Model | None:
        if last is None:
            return None
        final: Model = self._output_parser.parse(last.message.content or "")
        return None if cur and cur[0] == final else final

    def stream_call(
        self, *args: Any, llm_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Generator[Any, None, None]:
        cur: list[Any] | None = None
        last = None
        for last in self._llm.stream_chat(self._messages(**kwargs), **self._kwargs(llm_kwargs)):
            obj = self._partial(last, cur)
            if obj is not None:
                cur = obj if isinstance(obj, list) else [obj]
                yield obj
        final = self._final(last, cur)
        if final is not None:
            yield final

    async def astream_call(
        self, *args: Any, llm_kwargs: dict[str, Any] | None = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        messages = self._messages(**kwargs)
        gen = await self._llm.astream_chat(messages, **self._kwargs(llm_kwargs))

        async def objects() -> AsyncGenerator[Any, None]:
            cur: list[Any] | None = None
            last = None
            async for last in gen:
                obj = self._partial(last, cur)
                if obj is not None:
                    cur = obj if isinstance(obj, list) else [obj]
                    yield obj
            final = self._final(last, cur)
            if final is not None:
                yield final

        return objects()


def json_schema_program(
    output_cls: type[Model], prompt: BasePromptTemplate, llm: LLM
) -> JsonSchemaProgram[Model]:
    """A :class:`JsonSchemaProgram` for ``output_cls``."""
    return JsonSchemaProgram(PydanticOutputParser(output_cls=output_cls), output_cls, prompt, llm)
