"""Images and documents: OpenAI carries them as URLs (`data:` or http), Anthropic as typed sources."""

from __future__ import annotations

from typing import Any

from fleetplane.gateway.translate.shared import Body, TranslationError

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
            return data_url(str(source.get("media_type", "")), str(source.get("data", "")))
        if kind == "url" and isinstance(source.get("url"), str):
            return str(source["url"])
    raise TranslationError("only base64 and url image sources can be sent to OpenAI deployments", param)


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


def openai_document(block: Body, param: str) -> Body:
    """A base64 document becomes an OpenAI `file` part; a plain-text document becomes a text part."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if isinstance(source, dict) and kind == "base64":
        file: Body = {"file_data": data_url(str(source.get("media_type", "")), str(source.get("data", "")))}
        file["filename"] = block.get("title") or "document"
        return {"type": "file", "file": file}
    if isinstance(source, dict) and kind == "text":
        return {"type": "text", "text": str(source.get("data", ""))}
    raise TranslationError(
        f"document source {kind!r} cannot be sent to OpenAI deployments", f"{param}.source.type"
    )
