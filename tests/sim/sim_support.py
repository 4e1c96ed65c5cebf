"""Shared test data for the simulator's tests (a module, so test files can import it by name)."""

from __future__ import annotations

from typing import Any

WEATHER_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
}

# Models the shared simulator serves: instant, with limits only where a test needs them.
TEST_CONFIG: dict[str, Any] = {
    "seed": 7,
    "instant": True,
    "models": {
        "sim-gpt": {"output_tokens": {"mean": 40, "stddev": 10, "min": 5, "max": 80}},
        "sim-claude": {"owned_by": "anthropic", "display_name": "Sim Claude", "context_window": 200000},
        "sim-embed": {"kind": "embedding", "dimensions": 64},
        "sim-tiny-context": {"context_window": 20},
        "sim-limited": {"limits": {"rpm": 2, "tpm": 100000}},
        "sim-anthropic-limited": {"limits": {"rpm": 100, "input_tpm": 1000, "output_tpm": 500}},
    },
}
