"""JSON given on the command line: inline, or `@path` to read it from a file (`--input`, `--output`,
`--edit`). A value that does not parse ends the command with one line and exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fleetplane.cli.common import fail


def parse_json(option: str, text: str) -> Any:
    """A JSON value from an option: inline, or `@path` to read it from a file."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            fail(f"{option}: cannot read {path}: {exc.strerror}")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        fail(f'{option}: not valid JSON ({exc}); expected e.g. \'{{"order_id": "A-1"}}\' or @file.json')
