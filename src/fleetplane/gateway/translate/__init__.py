"""Protocol translation between the OpenAI Chat Completions and Anthropic Messages APIs, both ways:
requests, responses, errors and streams. Pure functions over plain dicts: no I/O.

One module per direction and concept; `shared` holds the mappings they agree on.
"""

from fleetplane.gateway.translate.errors import anthropic_error_to_openai, openai_error_to_anthropic
from fleetplane.gateway.translate.request_to_anthropic import openai_request_to_anthropic
from fleetplane.gateway.translate.request_to_openai import anthropic_request_to_openai
from fleetplane.gateway.translate.response_to_anthropic import openai_response_to_anthropic
from fleetplane.gateway.translate.response_to_openai import anthropic_response_to_openai
from fleetplane.gateway.translate.shared import (
    TokenUsage,
    Translated,
    TranslationError,
    usage_from_anthropic,
    usage_from_openai,
)
from fleetplane.gateway.translate.stream_to_anthropic import OpenAIToAnthropicStream
from fleetplane.gateway.translate.stream_to_openai import AnthropicToOpenAIStream

__all__ = [
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "TokenUsage",
    "Translated",
    "TranslationError",
    "anthropic_error_to_openai",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "openai_error_to_anthropic",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "usage_from_anthropic",
    "usage_from_openai",
]
