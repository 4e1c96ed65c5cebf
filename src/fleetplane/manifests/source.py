"""YAML read with the place of every value (file, line, column), and no silently duplicated keys.

PyYAML's composer keeps a mark on every node; the loader keeps the node tree beside the constructed
data so that any field path pydantic or a cross-document check names can be turned back into a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from fleetplane.manifests.errors import ManifestError

_BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false.

    YAML 1.1 also reads on/off/yes/no as booleans, which would turn `cache: {mode: off}` into
    `mode: false`.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class DuplicateKey:
    loc: tuple[str | int, ...]  # the path of the repeated key
    at: Position  # its second occurrence
    first: Position


@dataclass
class YamlDocument:
    """One document of a YAML file: its node tree (for positions) and its constructed data."""

    file: str  # the path as shown in messages
    path: Path
    index: int  # 0-based position in a multi-document file
    node: Node
    data: Any
    duplicates: list[DuplicateKey] = field(default_factory=list)

    @property
    def start(self) -> Position:
        return _position(self.node)

    def locate(self, loc: Sequence[str | int], *, key: bool = False) -> Position:
        """Where the value at `loc` is, or its key with `key=True`.

        A path that leaves the document (a missing field) stops at the deepest mapping that exists,
        which is the mapping that lacks the field.
        """
        node, key_node = self.node, None
        for part in loc:
            child = _child(node, part)
            if child is None:
                return _position(node)
            key_node, node = child
        if key and key_node is not None:
            return _position(key_node)
        return _position(node)


def read_yaml(path: Path, display: str) -> tuple[list[YamlDocument], list[ManifestError]]:
    """Every document of one file; a syntax error ends the file with an error at its place."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [ManifestError(display, 1, 1, problem=f"cannot read the file: {exc}")]
    documents: list[YamlDocument] = []
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            duplicates = list(_duplicates(node, (), set()))
            data = loader.construct_document(node)
            documents.append(YamlDocument(display, path, len(documents), node, data, duplicates))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return documents, [ManifestError(display, line, column, problem=f"invalid YAML: {_syntax(exc)}")]
    except yaml.YAMLError as exc:
        return documents, [ManifestError(display, 1, 1, problem=f"invalid YAML: {exc}")]
    finally:
        loader.dispose()
    return documents, []


def _syntax(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with its parser jargon ("while parsing a flow mapping") made plain."""
    problem = exc.problem or "not valid YAML"
    if "'\\t'" in problem:
        return "a tab character where YAML allows only spaces for indentation"
    for token, plain in _TOKENS.items():
        problem = problem.replace(token, plain)
    problem += _HINTS.get(problem, "")
    opened = _CONTEXT.match(exc.context or "")
    if opened and exc.context_mark is not None:
        mark = exc.context_mark
        problem += (
            f" (in the {opened.group(1)} that starts at line {mark.line + 1}, column {mark.column + 1})"
        )
    return problem


# PyYAML names tokens of its grammar; a YAML author knows these by what they look like.
_TOKENS = {
    "'<block end>'": "the end of the indented block",
    "<block end>": "the end of the indented block",
    "'<stream end>'": "the end of the file",
    "<stream end>": "the end of the file",
    "'<document start>'": "'---'",
    "'<block mapping start>'": "a new mapping",
    "'<block sequence start>'": "a new list",
    "'<scalar>'": "a value",
}
_HINTS = {
    "mapping values are not allowed here": " (a ':' inside a value: quote the value, or fix the indentation)",
    "sequence entries are not allowed here": " (a list item where a value belongs: check the indentation)",
}
_CONTEXT = re.compile(r"^while (?:parsing|scanning|constructing) (?:an? )?(.+)$")


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _child(node: Node, part: str | int) -> tuple[Node | None, Node] | None:
    if isinstance(node, MappingNode) and isinstance(part, str):
        # The last occurrence wins, as it does in the constructed data.
        found = None
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                found = (key, value)
        return found
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None


def _duplicates(node: Node, loc: tuple[str | int, ...], seen: set[int]) -> Iterator[DuplicateKey]:
    # An alias can point back at an enclosing node; each node is walked once.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        first: dict[str, Position] = {}
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in first:
                    yield DuplicateKey((*loc, key.value), _position(key), first[key.value])
                else:
                    first[key.value] = _position(key)
                yield from _duplicates(value, (*loc, key.value), seen)
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicates(item, (*loc, index), seen)
