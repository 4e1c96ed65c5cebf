"""`fleetplane eval pareto` end to end: the suite runs over each candidate through a real gateway (simulator
upstream), the table marks the frontier, the SVG is written, and bad --models are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from harness import GatewayUnderTest, start_gateway, write_fleet
from typer.testing import CliRunner

from fleetplane.cli import evals, evals_online
from fleetplane.evals.judges import configure_judges
from fleetplane.evals.pareto import Candidate, frontier
from fleetplane.sim.process import SimProcess

SUITE = """
apiVersion: fleetplane.dev/v1alpha1
kind: EvalSuite
metadata: {name: answers}
spec:
  target: {model: chain}
  dimensions:
    - name: completeness
      scorers: [{type: length, min: 12, unit: words}]
    - name: format
      scorers: [{type: refusal}]
  cases:
    - {id: a, input: "Explain quotas [[sim output_tokens=20]]"}
    - {id: b, input: "Explain breakers [[sim output_tokens=8]]"}
    - {id: c, input: "Explain fallbacks [[sim output_tokens=30]]"}
"""


@pytest.fixture
def served(tmp_path: Path, online_sim: SimProcess) -> Iterator[tuple[GatewayUnderTest, Path]]:
    fleet = write_fleet(tmp_path / "fleet", SUITE)
    gateway = start_gateway(fleet, f"sqlite:///{tmp_path / 'gw.db'}", online_sim.base_url)
    yield gateway, fleet
    gateway.stop()
    configure_judges(None)


def invoke(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    evals.register(app)
    evals_online.register(app)
    result = CliRunner().invoke(app, ["eval", *args])
    return result.exit_code, result.output


def test_pareto_runs_every_candidate_and_writes_the_plot(
    served: tuple[GatewayUnderTest, Path], tmp_path: Path
) -> None:
    gateway, fleet = served
    plot = tmp_path / "out" / "frontier.svg"
    common = [
        "--fleet",
        str(fleet),
        "--server",
        gateway.url,
        "--api-key",
        gateway.keys["full"],
        "--database-url",
        f"sqlite:///{tmp_path / 'evals.db'}",
    ]
    code, out = invoke(
        "pareto", "answers", "--models", "chain,solo,split", "--plot", str(plot), "-o", "json", *common
    )
    assert code == 0, out
    data = json.loads(out)
    assert [c["name"] for c in data["candidates"]] == ["chain", "solo", "split"] and data["refused"] == {}
    candidates = [
        Candidate(c["name"], c["quality"], c["score"], c["cost_usd"], c["latency_ms"])
        for c in data["candidates"]
    ]
    best = {c.name for c in frontier(candidates)}
    assert {c["name"] for c in data["candidates"] if c["frontier"]} == best
    for c in data["candidates"]:
        assert set(c["quality"]) == {"completeness", "format"}
        assert c["cost_usd"] > 0 and (c["dominated_by"] == []) == (c["name"] in best)
    assert data["plot"] == str(plot) and plot.read_text().startswith("<svg")

    code, table = invoke("pareto", "answers", "--models", "chain,solo", "--plot", str(plot), *common)
    assert code == 0 and "frontier" in table and "plot: " in table

    code, out = invoke("pareto", "answers", "--models", "chain", *common)
    assert code == 2 and "--models 'chain': expected two or more distinct model groups" in out
    code, out = invoke("pareto", "answers", "--models", "chain,nope", *common)
    assert code == 2 and "--models: nope not a Model in" in out
