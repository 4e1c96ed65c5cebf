"""Every kind of broken document, and the exact message it must give (file:line:column included).

Each case writes `fleet/case.yaml` (and sometimes more files) beside a valid `fleet/base.yaml`, so the
messages below are the only problems in the directory.
"""

# ruff: noqa: E501  (each expected message stays on one line, as it is printed)

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.loader import load

BASE = """\
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Organization
metadata: {name: globex}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: support}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Team
metadata: {name: research}
spec: {organization: acme}
---
apiVersion: fleetplane.dev/v1alpha1
kind: User
metadata: {name: alice}
spec: {team: research}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Customer
metadata: {name: initech}
spec: {organization: globex}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Provider
metadata: {name: openai}
spec: {type: openai-compatible, baseURL: "https://api.openai.com/v1", apiKey: {env: OPENAI_API_KEY}}
---
apiVersion: fleetplane.dev/v1alpha1
kind: Model
metadata: {name: chat}
spec:
  family: gpt
  contextWindow: 128000
  aliases: [fast]
  deployments:
    - {provider: openai, model: gpt-4o-mini}
"""

HEAD = "apiVersion: fleetplane.dev/v1alpha1\n"


def model(spec: str, name: str = "big") -> str:
    return f"{HEAD}kind: Model\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def provider(spec: str, name: str = "p") -> str:
    return f"{HEAD}kind: Provider\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def key(spec: str, name: str = "k") -> str:
    return f"{HEAD}kind: VirtualKey\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


GOOD_MODEL = "family: gpt\ncontextWindow: 8000\ndeployments:\n  - {provider: openai, model: m}\n"

CASES: list[tuple[str, dict[str, str], list[str]]] = [
    (
        "yaml syntax",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: x\nspec: {{organization: acme}}\n"},
        [
            "fleet/case.yaml:4:5: invalid YAML: expected ',' or '}', but got ':' "
            "(in the flow mapping that starts at line 3, column 11)"
        ],
    ),
    (
        "tab indentation",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata:\n\tname: x\n"},
        ["fleet/case.yaml:4:1: invalid YAML: a tab character where YAML allows only spaces for indentation"],
    ),
    (
        "a colon inside a value",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: x}}\nspec: organization: acme\n"},
        [
            "fleet/case.yaml:4:19: invalid YAML: mapping values are not allowed here (a ':' inside a value: quote the value, or fix the indentation)"
        ],
    ),
    (
        "bad indentation",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata:\n  name: x\n - a\n"},
        [
            "fleet/case.yaml:5:2: invalid YAML: expected the end of the indented block, but found a new list (in the block mapping that starts at line 1, column 1)"
        ],
    ),
    (
        "duplicate key",
        {
            "case.yaml": model(
                "family: gpt\ncontextWindow: 8000\nfamily: llama\ndeployments: [{provider: openai, model: m}]\n"
            )
        },
        ["fleet/case.yaml:8:3: Model/big: spec.family: duplicate key (first given at line 6)"],
    ),
    (
        "unknown kind",
        {"case.yaml": f"{HEAD}kind: Modle\nmetadata: {{name: x}}\n"},
        [
            "fleet/case.yaml:2:7: Modle/x: kind: found 'Modle'; "
            "expected one of: Agent, Breaker, Customer, EvalSuite, Model, Organization, Pipeline, Provider, Quota, Team, User, VirtualKey"
        ],
    ),
    (
        "wrong apiVersion",
        {"case.yaml": "apiVersion: fleetplane.dev/v1\nkind: Organization\nmetadata: {name: x}\n"},
        [
            "fleet/case.yaml:1:13: Organization/x: apiVersion: found 'fleetplane.dev/v1'; "
            "expected 'fleetplane.dev/v1alpha1'"
        ],
    ),
    (
        "missing apiVersion",
        {"case.yaml": "kind: Organization\nmetadata: {name: x}\n"},
        [
            "fleet/case.yaml:1:1: Organization/x: apiVersion: required field is missing; "
            "expected 'fleetplane.dev/v1alpha1'"
        ],
    ),
    (
        "missing kind",
        {"case.yaml": f"{HEAD}metadata: {{name: x}}\n"},
        [
            "fleet/case.yaml:1:1: kind: required field is missing; "
            "expected one of: Agent, Breaker, Customer, EvalSuite, Model, Organization, Pipeline, Provider, Quota, Team, User, VirtualKey"
        ],
    ),
    (
        "missing name",
        {
            "case.yaml": f"{HEAD}kind: Team\nmetadata:\n  labels: {{tier: gold}}\nspec: {{organization: acme}}\n"
        },
        ["fleet/case.yaml:4:3: Team: metadata.name: required field is missing"],
    ),
    (
        "bad name",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: Support_Team}}\nspec: {{organization: acme}}\n"},
        [
            "fleet/case.yaml:3:18: Team/Support_Team: metadata.name: found 'Support_Team'; expected a name "
            "of 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
        ],
    ),
    (
        "unknown field with a close match",
        {
            "case.yaml": model(
                "family: gpt\ncontextWindw: 8000\ndeployments: [{provider: openai, model: m}]\n"
            )
        },
        [
            "fleet/case.yaml:6:3: Model/big: spec.contextWindow: required field is missing",
            "fleet/case.yaml:7:3: Model/big: spec.contextWindw: unknown field; did you mean 'contextWindow'?",
        ],
    ),
    (
        "unknown top-level field",
        {"case.yaml": f"{HEAD}kind: Organization\nmetadata: {{name: x}}\nstatus: {{}}\n"},
        [
            "fleet/case.yaml:4:1: Organization/x: status: unknown field; "
            "expected one of: apiVersion, kind, metadata, spec"
        ],
    ),
    (
        "wrong type",
        {
            "case.yaml": model(
                "family: gpt\ncontextWindow: big\ndeployments: [{provider: openai, model: m}]\n"
            )
        },
        ["fleet/case.yaml:7:18: Model/big: spec.contextWindow: found 'big'; expected a whole number"],
    ),
    (
        "negative weight",
        {
            "case.yaml": model(
                """\
                family: gpt
                contextWindow: 8000
                deployments:
                  - {provider: openai, model: a}
                  - provider: openai
                    model: b
                    weight: -1
                """
            )
        },
        [
            "fleet/case.yaml:12:15: Model/big: spec.deployments[1].weight: found -1; expected a number greater than 0"
        ],
    ),
    (
        "empty deployments",
        {"case.yaml": model("family: gpt\ncontextWindow: 8000\ndeployments: []\n")},
        [
            "fleet/case.yaml:8:16: Model/big: spec.deployments: found an empty list; "
            "expected a list of at least 1 item"
        ],
    ),
    (
        "steps on some deployments only",
        {
            "case.yaml": model(
                """\
                family: gpt
                contextWindow: 8000
                deployments:
                  - {provider: openai, model: a, step: 0}
                  - {provider: openai, model: b}
                """
            )
        },
        [
            "fleet/case.yaml:10:7: Model/big: spec.deployments[1].step: missing, but other deployments set "
            "'step'; set it on every deployment or on none"
        ],
    ),
    (
        "bad duration",
        {"case.yaml": model(GOOD_MODEL + "timeout: 5 minutes\n")},
        [
            "fleet/case.yaml:10:12: Model/big: spec.timeout: found '5 minutes'; expected a duration: a number "
            "of seconds or a string like '500ms', '30s', '5m', '1h30m', '2d'"
        ],
    ),
    (
        "negative duration",
        {"case.yaml": model(GOOD_MODEL + "cooldown: -1\n")},
        ["fleet/case.yaml:10:13: Model/big: spec.cooldown: found -1; expected a duration of 0 or more"],
    ),
    (
        "YAML 1.1 boolean words stay strings",
        {"case.yaml": model(GOOD_MODEL + "cache: {mode: on}\n")},
        [
            "fleet/case.yaml:10:17: Model/big: spec.cache.mode: found 'on'; expected one of: off, first, last-resort"
        ],
    ),
    (
        "spec not a mapping",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: x}}\nspec: [acme]\n"},
        ["fleet/case.yaml:4:7: Team/x: spec: found a list; expected a mapping"],
    ),
    (
        "missing spec",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: x}}\n"},
        ["fleet/case.yaml:1:1: Team/x: spec: required field is missing"],
    ),
    (
        "label value not a string",
        {"case.yaml": f"{HEAD}kind: Organization\nmetadata:\n  name: x\n  labels: {{tier: 1}}\n"},
        [
            "fleet/case.yaml:5:18: Organization/x: metadata.labels.tier: found 1; expected a string (put it in quotes)"
        ],
    ),
    (
        "bad label key",
        {"case.yaml": f"{HEAD}kind: Organization\nmetadata:\n  name: x\n  labels: {{'-tier': gold}}\n"},
        [
            "fleet/case.yaml:5:21: Organization/x: metadata.labels.-tier: '-tier' is not a valid label key; "
            "expected an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'"
        ],
    ),
    (
        "inline apiKey",
        {
            "case.yaml": provider(
                "type: openai-compatible\nbaseURL: https://example.com\napiKey: sk-live-123\n"
            )
        },
        [
            "fleet/case.yaml:8:11: Provider/p: spec.apiKey: a secret may not be written inline; "
            "expected a reference: {env: VARIABLE} or {file: PATH}"
        ],
    ),
    (
        "secretRef with both env and file",
        {
            "case.yaml": provider(
                "type: anthropic\nbaseURL: https://example.com\napiKey: {env: K, file: k.txt}\n"
            )
        },
        ["fleet/case.yaml:8:11: Provider/p: spec.apiKey: expected exactly one of 'env' or 'file'"],
    ),
    (
        "sim provider with baseURL",
        {"case.yaml": provider("type: sim\nbaseURL: http://localhost:9000\n")},
        [
            "fleet/case.yaml:7:12: Provider/p: spec.baseURL: not allowed for a provider of type 'sim' "
            "(fleetplane starts the simulator itself)"
        ],
    ),
    (
        "missing baseURL",
        {"case.yaml": provider("type: openai-compatible\n")},
        [
            "fleet/case.yaml:6:3: Provider/p: spec.baseURL: required for a provider of type "
            "'openai-compatible'"
        ],
    ),
    (
        "baseURL without a scheme",
        {"case.yaml": provider("type: anthropic\nbaseURL: api.anthropic.com\n")},
        [
            "fleet/case.yaml:7:12: Provider/p: spec.baseURL: found 'api.anthropic.com'; "
            "expected a URL starting with http:// or https://"
        ],
    ),
    (
        "unknown provider type",
        {"case.yaml": provider("type: openai\nbaseURL: https://example.com\n")},
        [
            "fleet/case.yaml:6:9: Provider/p: spec.type: found 'openai'; "
            "expected one of: openai-compatible, anthropic, sim"
        ],
    ),
    (
        "sim config that does not exist",
        {"case.yaml": provider("type: sim\nsim: {config: sims/fast.yaml}\n")},
        ["fleet/case.yaml:7:17: Provider/p: spec.sim.config: no such file: fleet/sims/fast.yaml"],
    ),
    (
        "dangling provider",
        {
            "case.yaml": model(
                "family: gpt\ncontextWindow: 8000\ndeployments:\n  - {provider: opneai, model: m}\n"
            )
        },
        [
            "fleet/case.yaml:9:18: Model/big: spec.deployments[0].provider: no Provider named 'opneai'; expected one of: openai"
        ],
    ),
    (
        "dangling organization of a team",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: ops}}\nspec: {{organization: acne}}\n"},
        [
            "fleet/case.yaml:4:22: Team/ops: spec.organization: no Organization named 'acne'; "
            "expected one of: acme, globex"
        ],
    ),
    (
        "dangling team of a user",
        {"case.yaml": f"{HEAD}kind: User\nmetadata: {{name: bob}}\nspec: {{team: sales}}\n"},
        [
            "fleet/case.yaml:4:14: User/bob: spec.team: no Team named 'sales'; expected one of: research, support"
        ],
    ),
    (
        "dangling organization of a customer",
        {"case.yaml": f"{HEAD}kind: Customer\nmetadata: {{name: hooli}}\nspec: {{organization: hooli}}\n"},
        [
            "fleet/case.yaml:4:22: Customer/hooli: spec.organization: no Organization named 'hooli'; "
            "expected one of: acme, globex"
        ],
    ),
    (
        "dangling team of a key",
        {"case.yaml": key("team: sales\n")},
        [
            "fleet/case.yaml:6:9: VirtualKey/k: spec.team: no Team named 'sales'; expected one of: research, support"
        ],
    ),
    (
        "key for a user of another team",
        {"case.yaml": key("team: support\nuser: alice\n")},
        [
            "fleet/case.yaml:7:9: VirtualKey/k: spec.user: User/alice belongs to Team/research, not Team/support"
        ],
    ),
    (
        "key for a customer of another organization",
        {"case.yaml": key("team: support\ncustomer: initech\n")},
        [
            "fleet/case.yaml:7:13: VirtualKey/k: spec.customer: Customer/initech belongs to "
            "Organization/globex, but Team/support belongs to Organization/acme"
        ],
    ),
    (
        "key for a user and a customer",
        {"case.yaml": key("team: research\nuser: alice\ncustomer: initech\n")},
        [
            "fleet/case.yaml:8:13: VirtualKey/k: spec.customer: a key stands for a user or a customer, not both"
        ],
    ),
    (
        "key models naming an unknown model",
        {"case.yaml": key("team: support\nmodels: [chat, fast, 'gpt-*', chta]\n")},
        [
            "fleet/case.yaml:7:33: VirtualKey/k: spec.models[3]: no Model or alias named 'chta'; "
            "expected one of: chat, fast"
        ],
    ),
    (
        "alias that is a model name",
        {"case.yaml": model(GOOD_MODEL + "aliases: [chat]\n")},
        ["fleet/case.yaml:10:13: Model/big: spec.aliases[0]: alias 'chat' is the name of Model/chat"],
    ),
    (
        "alias of two models",
        {"case.yaml": model(GOOD_MODEL + "aliases: [quick, fast]\n")},
        [
            "fleet/case.yaml:10:20: Model/big: spec.aliases[1]: alias 'fast' is already an alias of "
            "Model/chat (fleet/base.yaml:40:13)"
        ],
    ),
    (
        "duplicate Kind/name across files",
        {"case.yaml": f"{HEAD}kind: Team\nmetadata: {{name: support}}\nspec: {{organization: globex}}\n"},
        [
            "fleet/case.yaml:3:18: Team/support: metadata.name: Team/support is defined twice; "
            "first at fleet/base.yaml:11:18"
        ],
    ),
    (
        "several problems in one document, all reported",
        {
            "case.yaml": model(
                """\
                family: ''
                contextWindow: 0
                deployments:
                  - {provider: openai, model: m, weight: 0, timeout: soon}
                """
            )
        },
        [
            "fleet/case.yaml:6:11: Model/big: spec.family: found ''; expected a non-empty string",
            "fleet/case.yaml:7:18: Model/big: spec.contextWindow: found 0; expected a number greater than 0",
            "fleet/case.yaml:9:44: Model/big: spec.deployments[0].weight: found 0; expected a number greater than 0",
            "fleet/case.yaml:9:56: Model/big: spec.deployments[0].timeout: found 'soon'; expected a duration: "
            "a number of seconds or a string like '500ms', '30s', '5m', '1h30m', '2d'",
        ],
    ),
    (
        "errors from every file",
        {
            "a.yaml": f"{HEAD}kind: Team\nmetadata: {{name: a}}\nspec: {{organization: nobody}}\n",
            "sub/b.yaml": f"{HEAD}kind: User\nmetadata: {{name: b}}\nspec: {{team: nobody}}\n",
        },
        [
            "fleet/a.yaml:4:22: Team/a: spec.organization: no Organization named 'nobody'; "
            "expected one of: acme, globex",
            "fleet/sub/b.yaml:4:14: User/b: spec.team: no Team named 'nobody'; "
            "expected one of: a, research, support",
        ],
    ),
]


@pytest.mark.parametrize(("files", "expected"), [(f, e) for _, f, e in CASES], ids=[c[0] for c in CASES])
def test_broken_documents_give_exact_messages(
    files: dict[str, str], expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fleet = Path("fleet")
    fleet.mkdir()
    (fleet / "base.yaml").write_text(BASE)
    for name, text in files.items():
        (fleet / name).parent.mkdir(parents=True, exist_ok=True)
        (fleet / name).write_text(text)

    with pytest.raises(ManifestErrors) as caught:
        load("fleet")

    assert [str(e) for e in caught.value.errors] == expected


def test_the_base_fleet_is_valid(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    assert len(load(tmp_path)) == 8


def test_an_error_carries_its_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("fleet").mkdir()
    Path("fleet/base.yaml").write_text(BASE)
    Path("fleet/case.yaml").write_text(
        model(
            "family: gpt\ncontextWindow: 8000\ndeployments:\n  - {provider: openai, model: m, weight: -1}\n"
        )
    )

    with pytest.raises(ManifestErrors) as caught:
        load("fleet")

    (error,) = caught.value.errors
    assert (error.file, error.line, error.column) == ("fleet/case.yaml", 9, 44)
    assert (error.ref, error.path, error.found) == ("Model/big", "spec.deployments[0].weight", "-1")
    assert error.expected == "a number greater than 0"
    assert error.problem is None
    assert caught.value.by_file() == {"fleet/case.yaml": [error]}


def test_an_inline_secret_is_never_echoed(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        provider("type: anthropic\nbaseURL: https://x.dev\napiKey: sk-ant-SECRET\n")
    )

    with pytest.raises(ManifestErrors) as caught:
        load(tmp_path)

    assert "SECRET" not in str(caught.value)
    assert caught.value.errors[0].found is None


def test_a_reference_to_an_invalid_document_is_reported_once(tmp_path: Path) -> None:
    # The provider is broken; the model naming it must not add a second, misleading "no Provider" error.
    (tmp_path / "p.yaml").write_text(provider("type: openai-compatible\n", name="openai"))
    (tmp_path / "m.yaml").write_text(model(GOOD_MODEL))

    with pytest.raises(ManifestErrors) as caught:
        load(tmp_path)

    assert [e.ref for e in caught.value.errors] == ["Provider/openai"]
