"""Plans: YAML and Markdown compile to the same plan; every bad expression or reference is reported at
the file:line of its field, in the Markdown file too."""

# ruff: noqa: E501  (expected messages stay whole, as they are printed)

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetplane.manifests.errors import ManifestErrors
from fleetplane.pipelines.sources import load_plans

EXAMPLES = Path(__file__).parent / "examples"


def test_yaml_and_markdown_compile_to_the_same_plan() -> None:
    from_yaml = load_plans(EXAMPLES / "yaml")["refunds"]
    from_markdown = load_plans(EXAMPLES / "markdown")["refunds"]
    assert from_yaml.digest == from_markdown.digest
    assert from_yaml.order == ("lookup", "refund", "notify")
    assert from_yaml.skills == ("escalate@^1", "issue-refund@^1", "lookup-order@^1.0", "notify@*")


def errors_of(tmp_path: Path, name: str, text: str) -> list[str]:
    (tmp_path / name).write_text(textwrap.dedent(text))
    with pytest.raises(ManifestErrors) as caught:
        load_plans(tmp_path)
    return str(caught.value).splitlines()


def test_bad_expressions_are_reported_where_they_are_written(tmp_path: Path) -> None:
    lines = errors_of(
        tmp_path,
        "p.yaml",
        """\
        apiVersion: fleetplane.dev/v1alpha1
        kind: Pipeline
        metadata: {name: p}
        spec:
          execute:
            - {id: a, skill: echo@*, input: {x: "{{ input.x.__class__ }}"}}
            - {id: b, skill: echo@*, when: "steps.a.output.ok", input: {y: "{{ steps.c.output }}"}}
            - {id: c, skill: echo@*, needs: [a], when: "open('/etc/passwd')"}
        """,
    )
    assert [line.removeprefix(f"{tmp_path}/") for line in lines] == [
        "p.yaml:6:41: Pipeline/p: spec.execute[0].input.x: the field '__class__' is not allowed (fields starting with '_' are private) in '{{ input.x.__class__ }}' at position 12",
        "p.yaml:7:36: Pipeline/p: spec.execute[1].when: reads steps.a without needing it (add 'a' to needs)",
        "p.yaml:7:68: Pipeline/p: spec.execute[1].input.y: reads steps.c without needing it (add 'c' to needs)",
        "p.yaml:8:48: Pipeline/p: spec.execute[2].when: calling 'open' is not allowed; functions: contains, default, join, json, length, lower, upper in \"open('/etc/passwd')\" at position 1",
    ]


def test_markdown_errors_point_into_the_markdown_file(tmp_path: Path) -> None:
    lines = errors_of(
        tmp_path,
        "m.pipeline.md",
        """\
        ---
        apiVersion: fleetplane.dev/v1alpha1
        kind: Pipeline
        metadata: {name: m}
        ---
        # m

        ## execute

        ```yaml
        - id: a
          skill: echo@*
          when: "input.x >"
        ```
        """,
    )
    assert [line.removeprefix(f"{tmp_path}/") for line in lines] == [
        "m.pipeline.md:13:9: Pipeline/m: spec.execute[0].when: invalid syntax in 'input.x >' at position 1"
    ]
