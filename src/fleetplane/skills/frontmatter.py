"""SKILL.md: the Agent Skills front matter, checked exactly as the format's validators check it, and the
Markdown body after it.

The rules (agentskills.io): `name` is required, 1-64 characters of lowercase letters, digits and single
hyphens, neither starting nor ending with one, and equal to the folder's name; `description` is required,
non-empty, at most 1024 characters; `compatibility` at most 500; `metadata` maps strings to strings;
`license` and `allowed-tools` (a space-separated list) are strings; no other key is allowed. fleetplane
adds one rule inside the format: `metadata.version` mirrors `skill.yaml`'s version, so a skill read by
any other tool still says which version it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fleetplane.manifests.errors import ManifestError
from fleetplane.manifests.source import read_yaml
from fleetplane.skills.checks import Checker

FIELDS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
NAME_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
NAME_EXPECTED = "1-64 lowercase letters, digits and single hyphens, not starting or ending with a hyphen"
_FENCE = "---"


@dataclass(frozen=True)
class FrontMatter:
    name: str
    description: str
    license: str | None
    compatibility: str | None
    metadata: dict[str, str]
    allowed_tools: str | None
    body: str
    allowed_tools_at: tuple[int, int] = (1, 1)  # line and column of allowed-tools in SKILL.md


def read_skill_md(path: Path, display: str, folder: str, problems: list[ManifestError]) -> FrontMatter | None:
    """The front matter and body of SKILL.md at `path`; None (with `problems` added) when it is invalid."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(ManifestError(display, 1, 1, problem=f"cannot read the file: {exc}"))
        return None
    lines = text.split("\n")
    if lines[0].rstrip() != _FENCE:
        problems.append(
            ManifestError(display, 1, 1, problem="SKILL.md must start with YAML front matter: a '---' line, "
                          "the fields, and another '---' line")
        )  # fmt: skip
        return None
    closing = next((i for i in range(1, len(lines)) if lines[i].rstrip() == _FENCE), None)
    if closing is None:
        problems.append(
            ManifestError(display, 1, 1, problem="the front matter is never closed by a '---' line")
        )
        return None
    # The reader takes the whole file: the front matter is its first YAML document, so every position is a
    # line of SKILL.md itself. What it says about the Markdown after the closing fence is not YAML's to say.
    documents, errors = read_yaml(path, display)
    problems.extend(e for e in errors if e.line <= closing + 1)
    if any(e.line <= closing + 1 for e in errors):
        return None
    doc = next((d for d in documents if d.start.line <= closing), None)
    if doc is None or not isinstance(doc.data, dict):
        problems.append(
            ManifestError(display, 2, 1, problem="the front matter must be a mapping with at least name and "
                          "description")
        )  # fmt: skip
        return None

    check = Checker(doc, problems)
    before = len(problems)
    check.mapping((), FIELDS, required=("name", "description"))
    name = check.string(("name",))
    if name is not None:
        if len(name) > 64 or not NAME_RE.match(name):
            check.add(("name",), expected=NAME_EXPECTED)
        elif name != folder:
            check.add(("name",), expected=f"'{folder}' (the name of the skill's folder)")
    description = check.string(("description",), max_length=1024)
    license_ = check.string(("license",))
    compatibility = check.string(("compatibility",), max_length=500)
    allowed_tools = check.string(("allowed-tools",))
    metadata: dict[str, str] = {}
    if check.has(("metadata",)):
        raw = check.value(("metadata",))
        if not isinstance(raw, dict):
            check.add(("metadata",), expected="a mapping of strings to strings")
        else:
            for key, value in raw.items():
                if not isinstance(key, str):
                    check.add(("metadata", key), expected="a string key", key=True)
                elif isinstance(value, str):
                    metadata[key] = value
                else:
                    check.string(("metadata", key))
    body = "\n".join(lines[closing + 1 :])
    if not body.strip():
        problems.append(
            ManifestError(display, closing + 1, 1, problem="the Markdown body after the front matter is "
                          "empty", expected="the instructions an agent reads when the skill is activated")
        )  # fmt: skip
    if len(problems) > before or name is None or description is None:
        return None
    at = check.doc.locate(("allowed-tools",))
    return FrontMatter(
        name, description, license_, compatibility, metadata, allowed_tools, body, (at.line, at.column)
    )
