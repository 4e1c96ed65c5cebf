"""Images and documents: OpenAI carries them as URLs (`data:` or http), Anthropic as typed sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetplane.gateway.translate.shared import Body, TranslationError, shown

_HTTP = ("http://", "https://")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """`data:<media type>[;params];base64,<data>` -> (media type, data); None for any other shape."""
    if not url.startswith("data:"):
        return None
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        return None
    media_type = header.partition(";")[0]
    return (media_type, data) if media_type else None


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def anthropic_image(url: Any, param: str) -> Body:
    if isinstance(url, str):
        parsed = parse_data_url(url)
        if parsed is not None:
            return {"type": "image", "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]}}
        if url.startswith(_HTTP):
            return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError("image_url.url must be an http(s) URL or a base64 data URL", param)


def openai_image_url(source: Any, param: str) -> str:
    if isinstance(source, dict):
        kind = source.get("type")
        if kind == "base64":
            return _base64_url(source, f"{param}.source")
        if kind == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise TranslationError("only base64 and url image sources can be sent to OpenAI deployments", param)


def _base64_url(source: Body, param: str) -> str:
    """A base64 source as a data URL; without its media type and data as strings there is none to make."""
    for key in ("media_type", "data"):
        if not isinstance(source.get(key), str):
            raise TranslationError(f"a base64 source needs {key} as a string", f"{param}.{key}")
    return data_url(source["media_type"], source["data"])


def anthropic_document(file: Any, param: str) -> Body:
    """An OpenAI `file` part sent inline as `file_data` becomes a base64 document; a file id cannot."""
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        raise TranslationError(
            "only files sent inline as file_data can be forwarded to Anthropic deployments", f"{param}.file"
        )
    parsed = parse_data_url(file["file_data"])
    if parsed is None:
        raise TranslationError("file_data must be a base64 data URL", f"{param}.file.file_data")
    block: Body = {
        "type": "document",
        "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]},
    }
    if isinstance(file.get("filename"), str):
        block["title"] = file["filename"]
    return block


def openai_document(block: Mapping[str, Any], param: str) -> Body:
    """A base64 document becomes an OpenAI `file` part; a plain-text document becomes a text part."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        file: Body = {"file_data": _base64_url(source, f"{param}.source")}
        title = block.get("title")
        file["filename"] = title if isinstance(title, str) and title else "document"
        return {"type": "file", "file": file}
    if isinstance(source, dict) and kind == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise TranslationError("a text source needs data as a string", f"{param}.source.data")
        return {"type": "text", "text": data}
    raise TranslationError(
        f"document source {shown(kind)} cannot be sent to OpenAI deployments", f"{param}.source.type"
    )
