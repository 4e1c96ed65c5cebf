"""`fleetplane render --target kubernetes` and `apply --target kubernetes` through typer's CliRunner;
apply against the kmock emulator."""

# ruff: noqa: E501  (expected output lines stay whole, as they are printed)

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from fleetplane.cli import manifests, render
from fleetplane.cli.render import rollout_history_kubernetes_command, rollout_undo_kubernetes_command

from .conftest import FLEET, GATEWAY_IMAGE, Emulator


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("FLEETPLANE_GATEWAY_IMAGE", raising=False)
    monkeypatch.delenv("FLEETPLANE_DATABASE_URL", raising=False)
    return CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    manifests.register(app)
    render.register(app)
    return app


def _invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(_app(), list(args))


def test_render_writes_one_file_per_object(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = _invoke(
        cli,
        "render",
        "--target",
        "kubernetes",
        str(FLEET),
        str(out),
        "--gateway-image",
        GATEWAY_IMAGE,
        "-n",
        "agents",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"rendered 30 objects to {out}/ (30 files)"
    assert "  Agent/support-bot: revision " in result.stdout
    assert (
        "warning: Agent/support-bot: spec.network.allow[2]: 'api.example.com' is a host name" in result.stderr
    )
    deployment = yaml.safe_load((out / "deployment-agent-support-bot.yaml").read_text())
    assert deployment["metadata"]["namespace"] == "agents"
    # Rendering again gives the same bytes.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert (
        _invoke(
            cli, "render", str(FLEET), str(out), "--gateway-image", GATEWAY_IMAGE, "-n", "agents"
        ).exit_code
        == 0
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_render_single_file(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "fleet.yaml"
    result = _invoke(cli, "render", str(FLEET), str(out), "--gateway-image", GATEWAY_IMAGE, "--single-file")
    assert result.exit_code == 0, result.output
    assert len([d for d in yaml.safe_load_all(out.read_text()) if d]) == 30


def test_render_refuses_an_unpinned_image(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    result = _invoke(cli, "render", str(FLEET), str(out), "--gateway-image", "ghcr.io/acme/fleetplane:0.1.0")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: Agent/triage: the runner image: image 'ghcr.io/acme/fleetplane:0.1.0' is not pinned by digest (expected repo@sha256:<64 hex digits>; a tag can move under a rollback)",
        "error: the gateway image (--gateway-image): image 'ghcr.io/acme/fleetplane:0.1.0' is not pinned by digest (expected repo@sha256:<64 hex digits>; a tag can move under a rollback)",
    ]
    assert not out.exists()


def test_render_bad_inputs(cli: CliRunner, tmp_path: Path) -> None:
    result = _invoke(
        cli,
        "render",
        str(FLEET),
        str(tmp_path / "o"),
        "--gateway-image",
        GATEWAY_IMAGE,
        "--image",
        "support-bot",
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --image 'support-bot': expected AGENT=REPO@sha256:<digest>"
    result = _invoke(cli, "render", str(tmp_path / "nope"), str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no such file or directory: {tmp_path / 'nope'}"
    result = _invoke(
        cli, "render", str(FLEET), str(tmp_path / "o"), "--gateway-image", GATEWAY_IMAGE, "-n", "Agents_1"
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: --namespace 'Agents_1' is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63, starting with a letter)"
    )
    (tmp_path / "file").write_text("")
    result = _invoke(cli, "render", str(FLEET), str(tmp_path / "file"), "--gateway-image", GATEWAY_IMAGE)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"error: cannot write {tmp_path / 'file'}: File exists"
    result = _invoke(cli, "render", "--target", "nomad", str(FLEET), str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "Invalid value for '--target'" in result.output


def test_apply_dry_run_contacts_no_cluster(cli: CliRunner, tmp_path: Path) -> None:
    result = _invoke(
        cli,
        "apply",
        str(FLEET),
        "--target",
        "kubernetes",
        "--dry-run",
        "--gateway-image",
        GATEWAY_IMAGE,
        "--kubeconfig",
        str(tmp_path / "none"),
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "dry run: nothing was applied (30 objects)"
    assert "would apply Deployment/agent-triage" in result.stdout


def test_apply_to_the_emulator_and_roll_back(
    cli: CliRunner,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TEST_CRM_TOKEN", "crm-123")
    monkeypatch.setenv("TEST_SUPPORT_BOT_KEY", "sk-fp-support")
    kubeconfig = str(emulator.kubeconfig(tmp_path / "kubeconfig", "agents"))
    common = [
        "--target",
        "kubernetes",
        "--kubeconfig",
        kubeconfig,
        "-n",
        "agents",
        "--gateway-image",
        GATEWAY_IMAGE,
    ]
    stores = ["--redis-url", "redis://redis:6379/0", "--database-url", "postgresql://fp@postgres/fp"]
    result = _invoke(cli, "apply", str(FLEET), *common, *stores)
    assert result.exit_code == 0, result.output
    assert "applied 27 objects to namespace agents" in result.stdout
    assert (
        "warning: Secret/agent-triage-virtual-key not written (no VirtualKey with agent: triage and a secretRef; create the Secret with kubectl create secret generic agent-triage-virtual-key --from-literal=key=...); pods that mount it wait for it"
        in result.stderr
    )
    assert (
        emulator.objects("secrets")["fleetplane-gateway-store"]["stringData"]["database-url"]
        == "postgresql://fp@postgres/fp"
    )

    fleet = tmp_path / "fleet"
    shutil.copytree(FLEET, fleet)
    agents = (fleet / "agents.yaml").read_text().replace("1111111111", "7777777777")
    (fleet / "agents.yaml").write_text(agents)
    result = _invoke(cli, "apply", str(fleet), *common, *stores)
    assert result.exit_code == 0, result.output
    new_lines = [line for line in result.stdout.splitlines() if line.endswith("(new)")]
    assert len(new_lines) == 1 and new_lines[0].startswith("  Agent/support-bot: revision ")

    rollout_history_kubernetes_command("support-bot", namespace="agents", kubeconfig=Path(kubeconfig))
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 2 and history[1].endswith("  (current)")
    rollout_undo_kubernetes_command("support-bot", namespace="agents", kubeconfig=Path(kubeconfig))
    undone = capsys.readouterr().out.strip()
    assert (
        undone
        == f"Agent/support-bot: rolled back from revision {history[1].split()[1]} to {history[0].split()[1]} (5 objects applied)"
    )
    image = emulator.objects("deployments")["agent-support-bot"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert image.endswith("1" * 64)


def test_apply_without_a_reachable_cluster(cli: CliRunner, tmp_path: Path) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    result = _invoke(
        cli,
        "apply",
        str(FLEET),
        "--target",
        "kubernetes",
        "--kubeconfig",
        str(tmp_path / "kubeconfig"),
        "--gateway-image",
        GATEWAY_IMAGE,
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the Kubernetes API server: ")
    (tmp_path / "broken").write_text("clusters: [")
    result = _invoke(
        cli,
        "apply",
        str(FLEET),
        "--target",
        "kubernetes",
        "--kubeconfig",
        str(tmp_path / "broken"),
        "--gateway-image",
        GATEWAY_IMAGE,
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith(
        f"error: cannot use the kubeconfig from {tmp_path / 'broken'}: "
    )


def test_without_the_kubernetes_extra(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rendering needs nothing beyond the base install; talking to a cluster says which extra to install.
    for module in ("lightkube", "lightkube.core.generic_client"):
        monkeypatch.setitem(__import__("sys").modules, module, None)
    assert (
        _invoke(cli, "render", str(FLEET), str(tmp_path / "o"), "--gateway-image", GATEWAY_IMAGE).exit_code
        == 0
    )
    result = _invoke(cli, "apply", str(FLEET), "--target", "kubernetes", "--gateway-image", GATEWAY_IMAGE)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "error: the Kubernetes backend needs lightkube, which is not installed: pip install 'fleetplane[kubernetes]'"
    )
