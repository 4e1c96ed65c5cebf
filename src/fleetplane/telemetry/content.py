"""What of a prompt may leave the process: capture modes, redaction, and scrubbing of secrets.

Content (messages, system instructions, tool arguments and results) is captured only when
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` asks: `NO_CONTENT` (the default), `SPAN_ONLY`,
`EVENT_ONLY` or `SPAN_AND_EVENT`. The legacy `true` means both places, so content shows up whichever of
traces or logs a backend reads (content that "never appears" because no logs pipeline was set up is a
common complaint); `false` means none. An unknown value captures nothing: a typo must fail closed.

Captured text passes a redaction hook (a `str -> str`, on by default: e-mail addresses, phone numbers,
Luhn-valid card numbers and secrets) and then, always, the secret scrubber: a caller may replace or turn
off the hook, never the scrubber. Attributes a caller passes are scrubbed too: a value under an
`authorization`/`api-key`-like key is replaced whole, any other string value loses what looks like a key.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any

log = logging.getLogger("fleetplane.telemetry")

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
REDACTED = "[REDACTED]"

Redactor = Callable[[str], str]


class CaptureMode(Enum):
    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"

    @property
    def on_span(self) -> bool:
        return self in (CaptureMode.SPAN_ONLY, CaptureMode.SPAN_AND_EVENT)

    @property
    def on_event(self) -> bool:
        return self in (CaptureMode.EVENT_ONLY, CaptureMode.SPAN_AND_EVENT)

    @property
    def any(self) -> bool:
        return self is not CaptureMode.NO_CONTENT

    @classmethod
    def parse(cls, value: str | None) -> CaptureMode:
        text = (value or "").strip()
        if not text:
            return cls.NO_CONTENT
        lowered = text.lower()
        if lowered == "true":
            return cls.SPAN_AND_EVENT
        if lowered == "false":
            return cls.NO_CONTENT
        try:
            return cls(text.upper())
        except ValueError:
            log.warning("%s=%r is not a capture mode; capturing no content", CAPTURE_ENV, text)
            return cls.NO_CONTENT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CaptureMode:
        env = os.environ if environ is None else environ
        return cls.parse(env.get(CAPTURE_ENV))


# --- secrets: scrubbed everywhere, always ---------------------------------------------------------

_SECRET_PATTERNS = (
    # OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-...) keys; fleetplane virtual keys (fp-...).
    re.compile(r"\b(?:sk|fp)-[A-Za-z0-9_\-]{16,}"),
    # AWS access key ids.
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    # An AWS secret access key or any other secret written as `name = value`.
    re.compile(
        r"(?i)\b((?:aws_secret_access_key|secret[_-]?key|api[_-]?key|access[_-]?token|password|passwd|client_secret)"
        r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',;]{4,})"
    ),
    # Bearer and Basic credentials in a header written out as text.
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9._~+/\-]{8,}=*)"),
    # JSON Web Tokens.
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    # PEM private keys.
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
)


def _replace_secret(match: re.Match[str]) -> str:
    # Patterns with a named prefix group keep the prefix so a reader sees what was there.
    if match.re.groups == 2:
        return f"{match.group(1)}{REDACTED}"
    return REDACTED


# Something every pattern above needs; one search of this skips the six for ordinary text (most
# attribute values), which matters on the gateway's path.
_MAYBE_SECRET = re.compile(
    r"(?i)(sk-|fp-|akia|asia|abia|acca|secret|api[_-]?key|access[_-]?token|passw|bearer|basic|eyj|-----begin)"
)


# Short strings already found clean: the same model, provider, team and deployment names recur on every
# request, and a set lookup is several times cheaper than the search. Only clean strings are kept (never
# one that held a secret); bounded, and emptied when full (unique ids fill it now and then).
_KNOWN_CLEAN: set[str] = set()
_KNOWN_CLEAN_MAX = 4096
_KNOWN_CLEAN_LEN = 128


def scrub_secrets(text: str) -> str:
    """`text` without anything that looks like an API key, token, password or private key."""
    if text in _KNOWN_CLEAN:
        return text
    if not _MAYBE_SECRET.search(text):
        if len(text) <= _KNOWN_CLEAN_LEN:
            if len(_KNOWN_CLEAN) >= _KNOWN_CLEAN_MAX:
                _KNOWN_CLEAN.clear()
            _KNOWN_CLEAN.add(text)
        return text
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(_replace_secret, text)
    return text


# Header and attribute names whose values are credentials, whatever they look like.
_SENSITIVE_KEY = re.compile(
    r"(?i)(authorization|api[-_.]?key|x-api-key|secret|password|passwd|token|cookie|credential|private[-_.]?key)"
)
# Telemetry names that contain "token" but hold counts or types, not credentials.
_NOT_SENSITIVE = re.compile(r"(?i)(_tokens$|\.tokens$|token\.type$|token\.modality$|max_tokens$)")


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key)) and not _NOT_SENSITIVE.search(key)


def scrub_value(key: str, value: Any) -> Any:
    """An attribute value fit to export: credentials under a sensitive key go whole, strings are scrubbed."""
    if is_sensitive_key(key):
        return REDACTED
    if isinstance(value, str):
        return scrub_secrets(value)
    if isinstance(value, (list, tuple)):
        return [scrub_secrets(v) if isinstance(v, str) else v for v in value]
    return value


def scrub_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: scrub_value(key, value) for key, value in attributes.items()}


# --- personal data: the default redaction hook ----------------------------------------------------

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
# International (+44 20 7946 0958) or national (415-555-2671, (415) 555 2671) numbers; counted in digits below
# so dates, versions and amounts are left alone.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{1,4}\)[\s.\-]?)?\d{2,4}(?:[\s.\-]\d{2,4}){1,4}(?!\w)"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)")
# A long run of token characters; redacted only when it also looks random (see _looks_random).
_LONG_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=]{32,}")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[CARD]"
    return match.group(0)


_NOT_PHONE = re.compile(r"^(?:\d{4}-\d{2}-\d{2}|\d{1,3}(?:\.\d{1,3}){3})")  # dates, IPv4 addresses


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    if _NOT_PHONE.match(text):
        return text
    digits = sum(char.isdigit() for char in text)
    separated = any(char in text for char in " .-()") or text.startswith("+")
    if 9 <= digits <= 15 and separated:
        return "[PHONE]"
    return text


def _entropy(text: str) -> float:
    counts = Counter(text)
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in counts.values())


def _looks_random(token: str) -> bool:
    classes = sum(
        (
            any(c.islower() for c in token),
            any(c.isupper() for c in token),
            any(c.isdigit() for c in token),
        )
    )
    # Random base64/hex of this length scores well above 3.5 bits per character; words and paths do not.
    return classes >= 2 and _entropy(token) >= 3.5


def _long_token(match: re.Match[str]) -> str:
    return "[TOKEN]" if _looks_random(match.group(0)) else match.group(0)


def redact_personal_data(text: str) -> str:
    """The default hook: e-mail addresses, card numbers (Luhn-checked), phone numbers, long random tokens."""
    text = _EMAIL.sub("[EMAIL]", text)
    text = _CARD.sub(_card, text)
    text = _PHONE.sub(_phone, text)
    return _LONG_TOKEN.sub(_long_token, text)


# --- the policy the span helpers apply ------------------------------------------------------------

# Keys of message parts that hold structure, not content; their values are never rewritten.
_STRUCTURAL_KEYS = frozenset({"role", "type", "finish_reason", "id", "name", "mime_type", "modality"})


@dataclass(frozen=True)
class ContentPolicy:
    """Where content may go, how it is redacted first, and how long one text may be."""

    mode: CaptureMode = CaptureMode.NO_CONTENT
    redactor: Redactor | None = field(default=redact_personal_data)
    # Longer texts are cut (JSON stays valid): a span past a backend's size limit is lost whole.
    max_chars: int = 16_384

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ContentPolicy:
        return cls(mode=CaptureMode.from_env(environ), **overrides)

    def clean_text(self, text: str) -> str:
        # Secrets first, so a replaced or disabled hook cannot let one through.
        text = scrub_secrets(text)
        if self.redactor is not None:
            text = self.redactor(text)
        if len(text) > self.max_chars:
            text = f"{text[: self.max_chars]}…[{len(text) - self.max_chars} chars cut]"
        return text

    def clean(self, value: Any) -> Any:
        """A JSON-like value with every content string redacted, scrubbed and bounded."""
        if isinstance(value, str):
            return self.clean_text(value)
        if isinstance(value, Mapping):
            return {
                str(k): (v if k in _STRUCTURAL_KEYS and isinstance(v, str) else self.clean(v))
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [self.clean(item) for item in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.clean_text(str(value))

    def to_json(self, value: Any) -> str:
        return json.dumps(self.clean(value), ensure_ascii=False, default=str)


# --- message shapes: provider formats in, the conventions' `parts` format out ---------------------


def _parts_of(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence):
        parts: list[dict[str, Any]] = []
        for item in content:
            if isinstance(item, str):
                parts.append({"type": "text", "content": item})
            elif isinstance(item, Mapping) and item.get("type") == "text":
                parts.append({"type": "text", "content": item.get("text", item.get("content", ""))})
            elif isinstance(item, Mapping):
                # Images, audio, files: say what was there without copying bytes or URLs.
                parts.append({"type": str(item.get("type", "unknown"))})
        return parts
    return [{"type": "text", "content": str(content)}]


def normalize_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """One chat message in the conventions' shape: `{"role", "parts": [...]}` (already-shaped ones pass)."""
    if "parts" in message:
        return dict(message)
    role = str(message.get("role", "user"))
    parts = _parts_of(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, Mapping) else {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id") if isinstance(call, Mapping) else None,
                "name": function.get("name"),
                "arguments": function.get("arguments"),
            }
        )
    if role == "tool":
        parts = [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        ]
    out: dict[str, Any] = {"role": role, "parts": parts}
    if "finish_reason" in message:
        out["finish_reason"] = message["finish_reason"]
    return out


def normalize_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [normalize_message(message) for message in messages]


def normalize_instructions(instructions: str | Sequence[Any]) -> list[dict[str, Any]]:
    return _parts_of(instructions)
