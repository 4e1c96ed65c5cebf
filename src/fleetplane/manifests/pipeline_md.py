"""A Pipeline written as Markdown (`*.pipeline.md`): front matter, then one fenced YAML block per stage.

```
---
apiVersion: fleetplane.dev/v1alpha1
kind: Pipeline
metadata: {name: refunds}
---
# Refunds            <- prose anywhere is documentation
## trigger           <- the heading's first word names the field of `spec`
```yaml
webhook: {dedupe: {header: Idempotency-Key}}
```
```

The blocks are composed in place (padded to their own line), so every node keeps its real line and
column, and the assembled document is a `YamlDocument` like any other: errors point into the Markdown.
Fenced blocks in another language (```json, ```text) are prose; `###` and deeper headings are prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from fleetplane.manifests.errors import ManifestError
from fleetplane.manifests.source import YamlDocument, _duplicates
from fleetplane.manifests.source import _Loader as YamlLoader

MARKDOWN_SUFFIX = ".pipeline.md"
_HEADING = re.compile(r"^##\s+([A-Za-z_][A-Za-z0-9_]*)")
_FENCE = re.compile(r"^(```|~~~)\s*([A-Za-z0-9_+-]*)\s*$")
_MAP = "tag:yaml.org,2002:map"
_STR = "tag:yaml.org,2002:str"


@dataclass
class _Block:
    stage: str
    heading_line: int  # 1-based
    start: int  # 0-based index of the block's first content line
    lines: list[str]


def read_markdown(path: Path, display: str) -> tuple[list[YamlDocument], list[ManifestError]]:
    """The one document of a `*.pipeline.md` file, or the errors that stop it being one."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ManifestError(display, 1, 1, problem=f"cannot read the file: {exc}")]
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return [], [_error(display, 1, "a pipeline in Markdown starts with front matter between '---' lines")]
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        return [], [_error(display, 1, "the front matter is not closed by a '---' line")]

    errors: list[ManifestError] = []
    blocks = _blocks(lines, end + 1, display, errors)
    try:
        front = _compose(display, lines[1:end], 1)
    except yaml.MarkedYAMLError as exc:
        return [], [_yaml_error(display, exc)]
    if not isinstance(front, MappingNode):
        return [], [_error(display, 2, "the front matter must be a mapping (apiVersion, kind, metadata)")]

    spec = _spec_node(front, display)
    seen = {k.value: k.start_mark.line + 1 for k, _ in spec.value if isinstance(k, ScalarNode)}
    for block in blocks:
        if block.stage in seen:
            errors.append(
                _error(
                    display,
                    block.heading_line,
                    f"'{block.stage}' is given twice (first at line {seen[block.stage]})",
                )
            )
            continue
        try:
            node = _compose(display, block.lines, block.start)
        except yaml.MarkedYAMLError as exc:
            errors.append(_yaml_error(display, exc))
            continue
        if node is None:
            errors.append(
                _error(display, block.heading_line, f"the YAML block of '## {block.stage}' is empty")
            )
            continue
        mark = yaml.Mark(display, 0, block.heading_line - 1, 3, None, 0)
        spec.value.append((ScalarNode(_STR, block.stage, mark, mark), node))
        seen[block.stage] = block.heading_line
    if errors:
        return [], errors
    data = YamlLoader("").construct_document(front)
    duplicates = list(_duplicates(front, (), set()))
    return [YamlDocument(display, path, 0, front, data, duplicates)], []


def _blocks(lines: list[str], first: int, display: str, errors: list[ManifestError]) -> list[_Block]:
    """The first YAML block under each `## stage` heading; a second one in the same section is an error."""
    blocks: list[_Block] = []
    stage: str | None = None
    heading = 0
    taken = False
    i = first
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence:
            close = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1)), None)
            if close is None:
                errors.append(_error(display, i + 1, "a fenced block is not closed"))
                return blocks
            if fence.group(2) in ("yaml", "yml"):
                if stage is None:
                    errors.append(_error(display, i + 1, "a YAML block before any '## stage' heading"))
                elif taken:
                    errors.append(_error(display, i + 1, f"a second YAML block under '## {stage}'"))
                else:
                    blocks.append(_Block(stage, heading, i + 1, lines[i + 1 : close]))
                    taken = True
            i = close + 1
            continue
        match = _HEADING.match(lines[i])
        if match:
            if stage is not None and not taken:
                errors.append(_error(display, heading, f"no ```yaml block under '## {stage}'"))
            stage, heading, taken = match.group(1).lower(), i + 1, False
        i += 1
    if stage is not None and not taken:
        errors.append(_error(display, heading, f"no ```yaml block under '## {stage}'"))
    return blocks


def _compose(display: str, lines: list[str], start: int) -> Node | None:
    # Padding with empty lines puts every mark on its real line in the Markdown file.
    loader = YamlLoader("\n" * start + "\n".join(lines) + "\n")
    loader.name = display
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _spec_node(front: MappingNode, display: str) -> MappingNode:
    for key, value in front.value:
        if isinstance(key, ScalarNode) and key.value == "spec" and isinstance(value, MappingNode):
            return value
    mark = yaml.Mark(display, 0, front.start_mark.line, 0, None, 0)
    spec = MappingNode(_MAP, [], mark, mark)
    front.value = [(k, v) for k, v in front.value if not (isinstance(k, ScalarNode) and k.value == "spec")]
    front.value.append((ScalarNode(_STR, "spec", mark, mark), spec))
    return spec


def _error(display: str, line: int, problem: str) -> ManifestError:
    return ManifestError(display, line, 1, problem=problem)


def _yaml_error(display: str, exc: yaml.MarkedYAMLError) -> ManifestError:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return ManifestError(display, line, column, problem=f"invalid YAML: {exc.problem or exc}")
