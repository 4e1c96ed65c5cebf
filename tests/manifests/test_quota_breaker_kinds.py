"""Quota and Breaker documents: what a good one looks like and the exact message each broken one gives."""

# ruff: noqa: E501  (each expected message stays on one line, as it is printed)

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from test_loader_errors import BASE, HEAD

from fleetplane.manifests.errors import ManifestErrors
from fleetplane.manifests.kinds import Breaker, Quota, Team, VirtualKey
from fleetplane.manifests.loader import load


def doc(kind: str, spec: str, name: str = "q") -> str:
    return f"{HEAD}kind: {kind}\nmetadata:\n  name: {name}\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def write(tmp_path: Path, case: str) -> Path:
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    (fleet / "base.yaml").write_text(BASE)
    (fleet / "case.yaml").write_text(case)
    return fleet


def test_a_full_quota_and_breaker_load(tmp_path: Path) -> None:
    quota = doc(
        "Quota",
        """\
        target: {team: support, model: chat}
        limits: {tpm: 400000, rpm: 600, concurrent: 20, usdPerDay: 50, usdPerMonth: 900, inputTpm: 300000}
        schedule:
          timeZone: Europe/Berlin
          rules:
            - {days: [mon, tue, wed, thu, fri], from: "09:00", to: "18:00", limits: {tpm: 100000}}
            - {days: [sat, sun], limits: {tpm: 0}}
        reservation: adaptive
        failMode: open
        """,
    )
    breaker = doc(
        "Breaker",
        """\
        target: {agent: "*"}
        costVelocity: {usdPerMinute: 5}
        repeats: {count: 5, window: 2m}
        contextGrowth: {maxInputTokens: 100000, maxGrowthPerTurn: 20000}
        openFor: 1m
        halfOpen: {probes: 1, closeAfter: 3}
        """,
        name="loop-guard",
    )
    team = f"{HEAD}kind: Team\nmetadata: {{name: ops}}\nspec: {{organization: acme, quota: {{tpm: 1000}}}}\n"
    key = f"{HEAD}kind: VirtualKey\nmetadata: {{name: k}}\nspec: {{team: ops, quota: {{rpm: 5}}, wait: {{max: 10s, priority: batch}}}}\n"
    desired = load(write(tmp_path, "---\n".join([quota, breaker, team, key])))
    q = desired.get(Quota, "q")
    assert q is not None
    assert q.spec.target.fields() == {"team": "support", "model": "chat"}
    assert q.spec.schedule is not None and q.spec.schedule.rules[1].limits.tpm == 0
    assert q.spec.limits.merged(q.spec.schedule.rules[0].limits).tpm == 100000
    assert q.spec.limits.merged(q.spec.schedule.rules[0].limits).rpm == 600
    b = desired.get(Breaker, "loop-guard")
    assert b is not None and b.spec.repeats is not None and b.spec.repeats.window == 120
    t = desired.get(Team, "ops")
    assert t is not None and t.spec.quota is not None and t.spec.quota.tpm == 1000
    k = desired.get(VirtualKey, "k")
    assert k is not None and k.spec.wait is not None and k.spec.wait.max == 10


CASES = [
    (
        "no limits",
        doc("Quota", "target: {team: support}\nlimits: {}\n"),
        "fleet/case.yaml:7:11: Quota/q: spec.limits: no limit is set; expected at least one of tpm, inputTpm, outputTpm, tph, tpd, rpm, concurrent, usdPerDay, usdPerMonth",
    ),
    (
        "negative limit",
        doc("Quota", "target: {team: support}\nlimits: {tpm: -5}\n"),
        "fleet/case.yaml:7:17: Quota/q: spec.limits.tpm: found -5; expected a number of at least 0",
    ),
    (
        "empty target",
        doc("Quota", "target: {}\nlimits: {tpm: 5}\n"),
        "fleet/case.yaml:6:11: Quota/q: spec.target: a target names nothing; expected one or more of organization, team, user, customer, agent, key, model, deployment",
    ),
    (
        "unknown team",
        doc("Quota", "target: {team: suport}\nlimits: {tpm: 5}\n"),
        "fleet/case.yaml:6:18: Quota/q: spec.target.team: no Team named 'suport'; expected one of: research, support",
    ),
    (
        "bad deployment",
        doc("Quota", "target: {deployment: gpt4}\nlimits: {tpm: 5}\n"),
        "fleet/case.yaml:6:24: Quota/q: spec.target.deployment: 'gpt4' is not a deployment; found 'gpt4'; expected provider/upstream-model",
    ),
    (
        "bad time zone",
        doc(
            "Quota",
            "target: {team: support}\nlimits: {tpm: 5}\nschedule: {timeZone: Mars/Olympus, rules: [{limits: {tpm: 1}}]}\n",
        ),
        "fleet/case.yaml:8:24: Quota/q: spec.schedule.timeZone: unknown time zone 'Mars/Olympus'; found 'Mars/Olympus'; expected an IANA time zone such as Europe/Berlin or UTC",
    ),
    (
        "bad clock time",
        doc(
            "Quota",
            "target: {team: support}\nlimits: {tpm: 5}\nschedule: {rules: [{from: '9am', limits: {tpm: 1}}]}\n",
        ),
        "fleet/case.yaml:8:29: Quota/q: spec.schedule.rules[0].from: '9am' is not a time of day; found '9am'; expected HH:MM on a 24-hour clock, e.g. 09:00 or 18:30",
    ),
    (
        "bad weekday",
        doc(
            "Quota",
            "target: {team: support}\nlimits: {tpm: 5}\nschedule: {rules: [{days: [monday], limits: {tpm: 1}}]}\n",
        ),
        "fleet/case.yaml:8:30: Quota/q: spec.schedule.rules[0].days[0]: found 'monday'; expected one of: mon, tue, wed, thu, fri, sat, sun",
    ),
    (
        "breaker without trigger",
        doc("Breaker", "target: {agent: bot}\n"),
        "fleet/case.yaml:6:3: Breaker/q: spec: a breaker without a trigger never trips; expected one or more of costVelocity, repeats, contextGrowth, errorRate",
    ),
    (
        "breaker two targets",
        doc("Breaker", "target: {agent: bot, team: support}\nrepeats: {count: 3}\n"),
        "fleet/case.yaml:6:11: Breaker/q: spec.target: a breaker watches exactly one thing; expected one of agent, key, team, deployment",
    ),
    (
        "error rate on an agent",
        doc("Breaker", "target: {agent: bot}\nerrorRate: {threshold: 0.5}\n"),
        "fleet/case.yaml:7:14: Breaker/q: spec.errorRate: errorRate watches a deployment; expected target: {deployment: provider/model}",
    ),
    (
        "repeats of one",
        doc("Breaker", "target: {agent: bot}\nrepeats: {count: 1}\n"),
        "fleet/case.yaml:7:20: Breaker/q: spec.repeats.count: found 1; expected a number of at least 2",
    ),
    (
        "unknown key",
        doc("Breaker", "target: {key: nobody}\nrepeats: {count: 3}\n"),
        "fleet/case.yaml:6:17: Breaker/q: spec.target.key: no VirtualKey named 'nobody'; no VirtualKey is defined",
    ),
]


@pytest.mark.parametrize(("case", "expected"), [(c, e) for _, c, e in CASES], ids=[n for n, _, _ in CASES])
def test_broken_quota_and_breaker_documents(tmp_path: Path, case: str, expected: str) -> None:
    with pytest.raises(ManifestErrors) as caught:
        load(write(tmp_path, case))
    messages = [str(e).replace(str(tmp_path) + "/", "") for e in caught.value.errors]
    assert messages == [expected]


def test_time_zones_of_quotas_and_organizations_are_checked(tmp_path: Path) -> None:
    quota = doc("Quota", "target: {team: support}\nlimits: {usdPerDay: 5}\ntimeZone: Mars/Olympus\n")
    with pytest.raises(ManifestErrors) as caught:
        load(write(tmp_path, quota))
    [message] = [str(e).replace(str(tmp_path) + "/", "") for e in caught.value.errors]
    assert message.endswith(
        "Quota/q: spec.timeZone: unknown time zone 'Mars/Olympus'; found 'Mars/Olympus'; "
        "expected an IANA time zone such as Europe/Berlin or UTC"
    )
    org = f"{HEAD}kind: Organization\nmetadata: {{name: moon}}\nspec: {{timeZone: Moon/Base}}\n"
    with pytest.raises(ManifestErrors) as caught:
        (tmp_path / "two").mkdir()
        load(write(tmp_path / "two", org))
    assert "spec.timeZone: unknown time zone 'Moon/Base'" in str(caught.value.errors[0])
