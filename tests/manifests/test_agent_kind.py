"""The Agent kind: both forms, quantities, trust and isolation, and the exact message of each mistake."""

# ruff: noqa: E501

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_loader_errors import BASE, HEAD

from fleetplane.manifests.agent import byte_count, cpu_millis
from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.kinds import Agent
from fleetplane.manifests.loader import load


def agent(spec: str, name: str = "bot") -> str:
    return f"{HEAD}kind: Agent\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def write(tmp_path: Path, case: str) -> Path:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "base.yaml").write_text(BASE)
    (fleet / "case.yaml").write_text(case)
    return fleet


def test_both_forms_load(tmp_path: Path) -> None:
    byo = agent(
        """\
        team: support
        run: {command: [python, -m, my_agent]}
        replicas: {min: 2, max: 5}
        trust: internal
        resources: {cpu: 500m, memory: 256Mi, pids: 64, disk: 64Mi}
        network: {mode: allowlist, allow: ["api.example.com:443"]}
        probes:
          readiness: {http: {path: /ready}, period: 2s}
          liveness: {exec: {command: ['true']}}
        secrets: [{name: stripe-key, env: STRIPE_KEY}]
        autoscaling: {targetInFlight: 3, scaleToZero: true, warmPool: 1}
        """
    )
    declarative = agent(
        "team: research\ndeclarative: {model: chat, instructions: 'Be helpful.', maxSteps: 4}\n",
        name="helper",
    )
    desired = load(write(tmp_path, byo + "---\n" + declarative))
    bot = desired.get(Agent, "bot")
    assert bot is not None and bot.spec.replicas.max == 5
    assert cpu_millis(bot.spec.resources.cpu) == 500 and byte_count(bot.spec.resources.memory) == 256 * 2**20
    helper = desired.get(Agent, "helper")
    assert helper is not None and helper.spec.declarative is not None and helper.spec.isolation is None


CASES = [
    (
        "neither form",
        agent("team: support\n"),
        "spec: an agent is either bring-your-own or declarative; expected exactly one of run, declarative",
    ),
    (
        "bad cpu",
        agent("team: support\nrun: {command: [x]}\nresources: {cpu: lots}\n"),
        "spec.resources.cpu: 'lots' is not a CPU quantity; found 'lots'; expected cores like '1' or '0.5', or millicores like '250m'",
    ),
    (
        "bad memory",
        agent("team: support\nrun: {command: [x]}\nresources: {memory: 2GB}\n"),
        "spec.resources.memory: '2GB' is not a size; found '2GB'; expected bytes, or a number with Ki/Mi/Gi (or K/M/G), e.g. 256Mi",
    ),
    (
        "untrusted in bwrap",
        agent("team: support\nrun: {command: [x]}\ntrust: untrusted\nisolation: bwrap\n"),
        "spec.isolation: trust 'untrusted' needs isolation 'microvm' or stronger; found 'bwrap'; expected microvm",
    ),
    (
        "min above max",
        agent("team: support\nrun: {command: [x]}\nreplicas: {min: 3, max: 2}\n"),
        "spec.replicas: min 3 is above max 2; expected min <= max",
    ),
    (
        "allow without allowlist",
        agent("team: support\nrun: {command: [x]}\nnetwork: {allow: ['a:1']}\n"),
        "spec.network.allow: 'allow' needs mode: allowlist",
    ),
    (
        "gpu share untrusted",
        agent("team: support\nrun: {command: [x]}\nresources: {gpu: {share: 0.5}}\n"),
        "spec.resources.gpu.share: a time-sliced GPU share gives no memory isolation: trusted agents only",
    ),
    (
        "reserved env",
        agent("team: support\nrun: {command: [x]}\nenv: {OPENAI_API_KEY: sk}\n"),
        "spec.env.OPENAI_API_KEY: env 'OPENAI_API_KEY' is set by fleetplane",
    ),
    (
        "unknown team",
        agent("team: sales\nrun: {command: [x]}\n"),
        "spec.team: no Team named 'sales'; expected one of: research, support",
    ),
    (
        "unknown model",
        agent("team: support\ndeclarative: {model: gpt-9, instructions: hi}\n"),
        "spec.declarative.model: no Model or alias named 'gpt-9'; expected one of: chat, fast",
    ),
    (
        "probe of both kinds",
        agent("team: support\nrun: {command: [x]}\nprobes: {liveness: {http: {}, exec: {command: [y]}}}\n"),
        "spec.probes.liveness: a probe is http or exec; expected exactly one of http, exec",
    ),
]


@pytest.mark.parametrize(("case", "expected"), [(c, e) for _, c, e in CASES], ids=[n for n, _, _ in CASES])
def test_broken_agents(tmp_path: Path, case: str, expected: str) -> None:
    with pytest.raises(ManifestErrors) as caught:
        load(write(tmp_path, case))
    [message] = [str(e) for e in caught.value.errors]
    assert message.split(": ", 2)[2] == expected, message
