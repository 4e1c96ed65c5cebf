"""Content capture: off by default (nothing of a prompt in any exported byte), each mode, redaction."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from fleetplane.telemetry import semconv as sc
from fleetplane.telemetry.content import (
    CAPTURE_ENV,
    CaptureMode,
    ContentPolicy,
    normalize_messages,
    redact_personal_data,
    scrub_secrets,
)
from fleetplane.telemetry.cost import TokenUsage
from fleetplane.telemetry.setup import InMemorySink, Telemetry

PROMPT = "Plan the zanzibar-quokka launch for next tuesday"
REPLY = "The marmalade-otter plan is ready"
SYSTEM = "You are terse-pelican, a planner"
TOOL_ARGUMENT = "wombat-ledger-77"


def run_call(mode: str | None) -> tuple[InMemorySink, bytes]:
    """One agent turn with a chat, a failing chat and a tool, under `mode`; returns the sink and all bytes."""
    sink = InMemorySink()
    environ = {} if mode is None else {CAPTURE_ENV: mode}
    telemetry = Telemetry.create(
        "content-test", span_sinks=[sink], log_sinks=[sink], otlp=False, environ=environ
    )
    spans = telemetry.spans
    with spans.invoke_agent_span("planner"):
        with spans.chat_span(provider="openai", model="gpt-4o") as chat:
            chat.record_input([{"role": "user", "content": PROMPT}], system_instructions=SYSTEM)
            chat.record_output([{"role": "assistant", "content": REPLY, "finish_reason": "stop"}])
            chat.set_usage(TokenUsage(12, 7))
        with pytest.raises(ValueError), spans.chat_span(provider="openai", model="gpt-4o-mini") as failing:
            failing.record_input([{"role": "user", "content": PROMPT}])
            raise ValueError(f"invalid request body: {PROMPT}")
        with spans.execute_tool_span("lookup") as tool:
            tool.record_tool_arguments({"id": TOOL_ARGUMENT})
            tool.record_tool_result({"rows": [TOOL_ARGUMENT]})
    assert telemetry.force_flush()
    wire = encode_spans(sink.spans).SerializeToString()
    if sink.logs:
        wire += encode_logs(sink.logs).SerializeToString()
    telemetry.shutdown()
    return sink, wire


@pytest.mark.parametrize("mode", [None, "NO_CONTENT", "false", "no_such_mode"])
def test_otel_no_capture_leaves_nothing_of_the_prompt_in_any_exported_byte(mode: str | None) -> None:
    sink, wire = run_call(mode)
    for secret in (PROMPT, "zanzibar", REPLY, "marmalade", SYSTEM, "pelican", TOOL_ARGUMENT, "wombat"):
        assert secret.encode() not in wire, secret
    assert sink.logs == []
    assert b"chat gpt-4o" in wire  # the spans themselves were exported


def test_otel_span_only_puts_content_on_spans_and_no_events() -> None:
    sink, _ = run_call("SPAN_ONLY")
    assert sink.logs == []
    spans = {span.name: dict(span.attributes or {}) for span in sink.spans}
    chat = spans["chat gpt-4o"]
    assert json.loads(chat[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(chat[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": REPLY}], "finish_reason": "stop"}
    ]
    assert json.loads(chat[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": SYSTEM}]
    tool = spans["execute_tool lookup"]
    assert json.loads(tool[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"id": TOOL_ARGUMENT}
    assert json.loads(tool[sc.GEN_AI_TOOL_CALL_RESULT]) == {"rows": [TOOL_ARGUMENT]}
    # With capture on, the failure's message is kept (redacted like content).
    failing = next(span for span in sink.spans if span.name == "chat gpt-4o-mini")
    assert PROMPT in failing.events[0].attributes[sc.EXCEPTION_MESSAGE]  # type: ignore[index]


def test_otel_event_only_emits_the_details_event_and_keeps_spans_clean() -> None:
    sink, _ = run_call("EVENT_ONLY")
    for span in sink.spans:
        assert not {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_TOOL_CALL_ARGUMENTS} & set(
            span.attributes or {}
        )
    events = [log.log_record for log in sink.logs]
    assert {event.event_name for event in events} == {sc.EVENT_INFERENCE_DETAILS}
    chat_span = next(span for span in sink.spans if span.name == "chat gpt-4o")
    [event] = [e for e in events if (e.attributes or {}).get(sc.GEN_AI_REQUEST_MODEL) == "gpt-4o"]
    attrs = dict(event.attributes or {})
    assert event.span_id == chat_span.context.span_id and event.trace_id == chat_span.context.trace_id
    assert event.severity_number is not None and event.severity_number.value == 5
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat" and attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
    # Events carry content structured (log attributes may be any value), not as JSON strings.
    [user] = attrs[sc.GEN_AI_INPUT_MESSAGES]
    [assistant] = attrs[sc.GEN_AI_OUTPUT_MESSAGES]
    [instructions] = attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS]
    assert user["parts"][0]["content"] == PROMPT and assistant["parts"][0]["content"] == REPLY
    assert instructions["content"] == SYSTEM
    failed = [e for e in events if (e.attributes or {}).get(sc.GEN_AI_REQUEST_MODEL) == "gpt-4o-mini"]
    assert failed[0].attributes is not None and failed[0].attributes[sc.ERROR_TYPE] == "ValueError"


@pytest.mark.parametrize("mode", ["SPAN_AND_EVENT", "true", "True"])
def test_otel_span_and_event_puts_content_in_both(mode: str) -> None:
    sink, wire = run_call(mode)
    chat = next(span for span in sink.spans if span.name == "chat gpt-4o")
    assert sc.GEN_AI_INPUT_MESSAGES in (chat.attributes or {})
    assert len(sink.logs) == 2
    assert PROMPT.encode() in wire


def test_otel_capture_mode_parsing() -> None:
    assert CaptureMode.parse(None) is CaptureMode.NO_CONTENT
    assert CaptureMode.parse(" span_only ") is CaptureMode.SPAN_ONLY
    assert CaptureMode.parse("EVENT_ONLY") is CaptureMode.EVENT_ONLY
    assert CaptureMode.parse("TRUE") is CaptureMode.SPAN_AND_EVENT
    assert CaptureMode.parse("false") is CaptureMode.NO_CONTENT


def test_otel_an_unknown_capture_mode_fails_closed_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetplane.telemetry"):
        assert CaptureMode.from_env({CAPTURE_ENV: "everything"}) is CaptureMode.NO_CONTENT
    assert "everything" in caplog.text


def test_otel_captured_content_is_redacted_and_secrets_never_pass() -> None:
    sink = InMemorySink()
    telemetry = Telemetry.create("redact", span_sinks=[sink], otlp=False, environ={CAPTURE_ENV: "SPAN_ONLY"})
    text = "mail jane@example.com, key sk-proj-" + "Ab1" * 10
    with telemetry.spans.chat_span(provider="openai", model="m") as chat:
        chat.record_input([{"role": "user", "content": text}])
    telemetry.force_flush()
    stored = (sink.spans[0].attributes or {})[sc.GEN_AI_INPUT_MESSAGES]
    assert "jane@example.com" not in stored and "[EMAIL]" in stored
    assert "sk-proj" not in stored and "[REDACTED]" in stored
    telemetry.shutdown()


def test_otel_a_disabled_or_replaced_hook_still_scrubs_secrets() -> None:
    key = "sk-ant-api03-" + "Zy9" * 12
    off = ContentPolicy(mode=CaptureMode.SPAN_ONLY, redactor=None)
    assert off.clean_text(f"mail jane@example.com {key}") == "mail jane@example.com [REDACTED]"
    shout = ContentPolicy(mode=CaptureMode.SPAN_ONLY, redactor=str.upper)
    assert shout.clean_text(f"hi {key}") == "HI [REDACTED]"


def test_otel_long_content_is_cut_and_stays_valid_json() -> None:
    policy = ContentPolicy(mode=CaptureMode.SPAN_ONLY, max_chars=10)
    out = json.loads(policy.to_json([{"role": "user", "parts": [{"type": "text", "content": "word " * 50}]}]))
    content = out[0]["parts"][0]["content"]
    assert content.startswith("word word ") and content.endswith("[240 chars cut]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+ops@example.co.uk today", "write to [EMAIL] today"),
        ("call +1 (415) 555-2671 now", "call [PHONE] now"),
        ("call 415-555-2671 now", "call [PHONE] now"),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111 ok", "card [CARD] ok"),
        ("amex 378282246310005 ok", "amex [CARD] ok"),
        ("token ghp8fJ2kLm9Qx7Zt4Vb1Nc6Rw3Ys5Ua0Pd2Ee7Hh end", "token [TOKEN] end"),
    ],
)
def test_otel_default_hook_redacts_personal_data(text: str, expected: str) -> None:
    assert redact_personal_data(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 fails Luhn",
        "on 2024-01-15 10:30 at 192.168.100.200",
        "version 1.2.3 costs 1,299.99 for 3 seats",
        "path /home/user/projects/fleetplane/src/fleetplane",
        "the word internationalization-localization-globalization",
    ],
)
def test_otel_default_hook_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_personal_data(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("openai sk-proj-abcdefghijklmnopqrstuvwx", "openai [REDACTED]"),
        ("anthropic sk-ant-api03-ABCDEFGHIJKLMNOP_qrstuv", "anthropic [REDACTED]"),
        ("fleetplane fp-AbCdEfGhIjKlMnOpQrStUv", "fleetplane [REDACTED]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [REDACTED]"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key=[REDACTED]",
        ),
        ("Authorization: Bearer abc.def.ghijklmnop", "Authorization: Bearer [REDACTED]"),
        ("password: hunter22", "password: [REDACTED]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmU", "jwt [REDACTED]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "[REDACTED]"),
    ],
)
def test_otel_secrets_are_scrubbed(text: str, expected: str) -> None:
    assert scrub_secrets(text) == expected


def test_otel_provider_messages_are_normalized_to_parts() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": '{"a": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ]
    assert normalize_messages(messages) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "f", "arguments": '{"a": 1}'}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "42"}]},
    ]
