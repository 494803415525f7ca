"""A catalogued model's capabilities as LangChain's ``ModelProfile``."""

from __future__ import annotations

from langchain_core.language_models.model_profile import ModelProfile

from campusllm.registry import ModelSpec

__all__ = ["model_profile"]


def model_profile(spec: ModelSpec) -> ModelProfile:
    """``spec``'s capabilities under LangChain's ``ModelProfile`` keys.

    Example:
        >>> from campusllm.registry import ModelSpec
        >>> model_profile(ModelSpec(id="x", vision=True))["image_inputs"]
        True
    """
    profile = ModelProfile(
        name=spec.display_name or spec.id,
        status=spec.status,
        text_inputs=True,
        text_outputs=spec.kind == "chat",
        image_inputs=spec.vision,
        image_url_inputs=spec.vision,
        tool_calling=spec.tools,
        tool_choice=spec.tools,
        tool_call_streaming=spec.tools,
        structured_output=spec.json_schema,
        reasoning_output=spec.reasoning.shape != "none" or spec.reasoning.default_on,
    )
    if spec.context_window:
        profile["max_input_tokens"] = spec.context_window
    elif spec.max_input_tokens:
        profile["max_input_tokens"] = spec.max_input_tokens
    if spec.max_output:
        profile["max_output_tokens"] = spec.max_output
    return profile
