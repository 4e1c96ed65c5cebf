"""`fleetplane skill` end to end through typer's CliRunner: validate, test, pack, keygen, sign, publish,
list, show, promote (the gate refuses the known-bad version), canary, lock, outdated, rollback, policy;
every bad input a one-line error with its exit code."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import typer
from skilltools import FIXTURES, version_of, write_trust
from typer.testing import CliRunner, Result

from fleetplane.cli import skill

Invoke = Callable[..., Result]


@pytest.fixture
def cli(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("FLEETPLANE_DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    skill.register(app)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            app, ["skill", *args, "--actor", "ann"] if args[0] in _ACTED else ["skill", *args]
        )

    return invoke


_ACTED = {"publish", "promote", "rollback", "policy"}


def test_authoring_commands(cli: Invoke, tmp_path: Path) -> None:
    ok = cli("validate", str(FIXTURES / "summarize"), str(FIXTURES / "send-refund"))
    assert (ok.exit_code, ok.stdout) == (
        0,
        "ok summarize@1.0.0: 4 eval cases, 1 test files\nok send-refund@2.1.0: 1 eval cases, 1 test files\n",
    )
    broken = shutil.copytree(FIXTURES / "summarize", tmp_path / "broken" / "summarize")
    (broken / "skill.yaml").write_text((broken / "skill.yaml").read_text().replace("kind: pure", "kind: pur"))
    bad = cli("validate", str(broken))
    assert (bad.exit_code, bad.stderr) == (
        1,
        "error: summarize/skill.yaml:18:9: effects.kind: found 'pur'; expected one of: pure, read, write, external\n",
    )
    missing = cli("validate", "nowhere")
    assert (missing.exit_code, missing.stderr) == (2, "error: no skill folder at nowhere\n")

    one, two = (
        cli("pack", str(FIXTURES / "summarize"), "-o", "a.tgz"),
        cli("pack", str(FIXTURES / "summarize"), "-o", "b.tgz"),
    )
    assert one.exit_code == two.exit_code == 0
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()

    key = cli("keygen", "keys/dev.pem")
    assert key.exit_code == 0 and key.stdout.startswith("ed25519:")
    again = cli("keygen", "keys/dev.pem")
    assert (again.exit_code, again.stderr) == (
        1,
        "error: keys/dev.pem already exists: choose another path, or remove it first\n",
    )
    signed = cli("sign", str(broken.parent.parent / "broken" / "summarize"), "--key", "keys/dev.pem")
    assert signed.exit_code == 1  # an invalid folder is never signed
    folder = shutil.copytree(FIXTURES / "summarize", tmp_path / "mine" / "summarize")
    signed = cli("sign", str(folder), "--key", "keys/dev.pem")
    assert signed.exit_code == 0 and signed.stdout.startswith(f"signed {folder}/skill.dsse.json with key ")
    envelope = orjson.loads((folder / "skill.dsse.json").read_bytes())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"


def test_the_skill_test_command(cli: Invoke) -> None:
    good = cli("test", str(FIXTURES / "summarize"))
    assert good.exit_code == 0, good.output
    assert good.stdout.endswith("eval suite passed: score 1.00, threshold 0.75, 4 cases\n")
    bad = cli("test", str(FIXTURES / "regressed" / "summarize"))
    assert bad.exit_code == 1
    assert "FAIL short (0.00)\n" in bad.stdout
    assert bad.stdout.endswith("eval suite FAILED: score 0.62, threshold 0.75, 4 cases\n")


def test_registry_commands(cli: Invoke, tmp_path: Path) -> None:
    published = cli("publish", str(FIXTURES / "summarize"))
    assert published.exit_code == 0, published.output
    assert published.stdout.splitlines()[1] == "eval score 1.00 (threshold 0.75)"
    assert cli("promote", "summarize@1.0.0").exit_code == 0
    regressed = cli("publish", str(FIXTURES / "regressed" / "summarize"))
    assert regressed.exit_code == 0  # published (it can be inspected and compared), but the user is told
    assert regressed.stdout.splitlines()[-1] == (
        "eval score 0.62 (threshold 0.75); below its threshold, so `skill promote` will refuse it"
    )
    refused = cli("promote", "summarize@1.1.0")
    assert (refused.exit_code, refused.stderr) == (
        1,
        "error: promotion refused by the eval gate: summarize@1.1.0 scores 0.62 on its eval suite, below its threshold 0.75 (failing: short, length)\n",
    )
    locked = cli("lock", "summarize@^1.0")
    assert locked.exit_code == 0 and locked.stdout.startswith("summarize ^1.0 -> 1.0.0 sha256:")
    wider = version_of(tmp_path / "v", "send-refund", "2.1.0")
    (wider / "skill.yaml").write_text(
        (wider / "skill.yaml")
        .read_text()
        .replace("- {name: payments.lookup}", "- {name: payments.lookup}\n  - {name: mail.send}")
    )
    good = version_of(tmp_path / "v", "summarize", "1.3.0")
    (good / "skill.yaml").write_text((good / "skill.yaml").read_text().replace("kind: pure", "kind: read"))
    assert cli("publish", str(good)).exit_code == 0
    canary = cli("promote", "summarize@1.3.0", "--canary", "25")
    assert (canary.exit_code, canary.stdout) == (
        0,
        "summarize@1.3.0 serves 25% of runs (summarize@1.3.0 scores 1.00; against summarize@1.0.0: pass: "
        "candidate - baseline = +0.0000 [+0.0000, +0.0000] (mcnemar-exact))\n",
    )
    listed = cli("list")
    assert "│ summarize │ 1.3.0   │ canary 25% │" in listed.stdout
    assert "│ summarize │ 1.0.0   │ stable 75% │" in listed.stdout
    outdated = cli("outdated")
    assert outdated.exit_code == 0
    assert "│ summarize │ ^1.0       │ 1.0.0  │ 1.1.0     │         │ -0.38      │ none" in outdated.stdout
    assert (
        "│ summarize │ ^1.0       │ 1.0.0  │ 1.3.0     │         │ +0.00      │ effects pure -> read"
        in outdated.stdout
    )
    shown = cli("show", "summarize")
    assert shown.exit_code == 0
    assert "serving: 1.0.0; canary 1.3.0 at 25% (generation 2)" in shown.stdout
    back = cli("rollback", "summarize")
    assert (back.exit_code, back.stdout) == (0, "summarize@1.0.0 serves all runs\n")
    again = cli("rollback", "summarize")
    assert (again.exit_code, again.stderr) == (
        1,
        "error: summarize@1.0.0 has no earlier version to roll back to\n",
    )

    assert cli("policy").stdout == "signing is not required\n"
    assert cli("policy", "--require-signed").stdout == "signing is required\n"
    unsigned = cli("publish", str(wider))
    assert (unsigned.exit_code, unsigned.stderr) == (
        1,
        "error: send-refund@2.1.0 is not signed (no skill.dsse.json) and signing is required\n",
    )
    public = cli("keygen", "release.pem").stdout.strip()
    write_trust(tmp_path / "trust.yaml", [("release", public, ["send-*"])])
    assert cli("sign", str(wider), "--key", "release.pem").exit_code == 0
    ok = cli("publish", str(wider), "--trust", "trust.yaml")
    assert ok.exit_code == 0, ok.output
    assert "(signed by " in ok.stdout
    nobody = cli("promote", "nope@1.0.0")
    assert (nobody.exit_code, nobody.stderr) == (
        2,
        "error: skill nope@1.0.0 is not published; no version of it is published\n",
    )
    bare = cli("promote", "summarize")
    assert (bare.exit_code, bare.stderr) == (
        2,
        "error: give the version to promote as NAME@VERSION, e.g. summarize@1.2.0\n",
    )
    no_lock = cli("outdated", "--lock", "missing.lock")
    assert (no_lock.exit_code, no_lock.stderr) == (2, "error: no lock file at missing.lock\n")
    # A malformed version or constraint is bad input (exit 2) that says what it expected, not "not published".
    for command in ("promote", "show"):
        malformed = cli(command, "summarize@x.y")
        assert (malformed.exit_code, malformed.stderr) == (
            2,
            "error: summarize@x.y: 'x.y' is not a semantic version such as 1.2.0, e.g. summarize@1.2.0\n",
        )
    constraint = cli("lock", "summarize@x.y")
    assert (constraint.exit_code, constraint.stderr) == (
        2,
        "error: summarize@x.y: 'x.y' is not a version constraint such as ^1.2, ~1.2.3, >=1.0 <2.0, 1.x or *\n",
    )
    canary = cli("promote", "summarize@1.0.0", "--canary", "150")
    assert (canary.exit_code, canary.stderr) == (
        2,
        "error: --canary 150: a canary is 1 to 99 percent of runs\n",
    )


def test_keygen_adds_the_key_to_a_trust_file(cli: Invoke, tmp_path: Path) -> None:
    made = cli("keygen", "keys/release.pem", "--trust", "trust.yaml", "--skills", "send-*, summarize")
    assert made.exit_code == 0, made.output
    public = made.stdout.splitlines()[0]
    assert made.stdout.splitlines()[1] == "added key 'release' to trust.yaml (may sign: send-*, summarize)"
    from fleetplane.skills.trust import TrustPolicy

    trust = TrustPolicy.load(tmp_path / "trust.yaml")
    assert [(k.name, k.skills) for k in trust.keys] == [("release", ("send-*", "summarize"))]
    assert (tmp_path / "keys" / "release.pem.pub").read_text() == public + "\n"
    twice = cli("keygen", "other/release.pem", "--trust", "trust.yaml")
    assert (twice.exit_code, twice.stderr) == (1, "error: trust.yaml already lists a key named 'release'\n")
    assert not (tmp_path / "other").exists()
    empty = cli("keygen", "k.pem", "--skills", " , ")
    assert (empty.exit_code, empty.stderr) == (
        2,
        "error: --skills: give at least one skill name pattern, e.g. --skills 'support-*'\n",
    )
