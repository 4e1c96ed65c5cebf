"""Pareto selection: dominance on every quality dimension, cost and latency; the frontier; the plot file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from fleetplane.evals.pareto import Candidate, dominated_by, dominates, frontier, plot_svg
from fleetplane.evals.results import Run

CHEAP = Candidate("cheap", {"correct": 0.70, "tone": 0.80}, 0.74, cost_usd=0.0001, latency_ms=200)
BIG = Candidate("big", {"correct": 0.92, "tone": 0.90}, 0.91, cost_usd=0.0020, latency_ms=900)
# Worse than big on both dimensions, dearer and slower: dominated.
WORSE = Candidate("worse", {"correct": 0.90, "tone": 0.85}, 0.88, cost_usd=0.0030, latency_ms=1200)
# Best tone but worst correctness: not dominated by anyone (a trade-off on a dimension).
TONE = Candidate("tone", {"correct": 0.60, "tone": 0.95}, 0.72, cost_usd=0.0025, latency_ms=1000)


def test_a_dominated_candidate_is_excluded_and_trade_offs_stay() -> None:
    everyone = [CHEAP, BIG, WORSE, TONE]
    assert [c.name for c in frontier(everyone)] == ["cheap", "big", "tone"]
    assert dominates(BIG, WORSE) and not dominates(WORSE, BIG)
    assert not dominates(BIG, TONE) and not dominates(CHEAP, BIG)
    assert dominated_by(WORSE, everyone) == ["big"]


def test_equal_candidates_do_not_dominate_each_other() -> None:
    twin = Candidate("twin", dict(BIG.quality), BIG.score, BIG.cost_usd, BIG.latency_ms)
    assert not dominates(BIG, twin) and not dominates(twin, BIG)
    assert [c.name for c in frontier([BIG, twin])] == ["big", "twin"]


def test_candidate_from_a_run_summary() -> None:
    run = Run(
        "r1",
        "s",
        "d",
        "model:fast",
        "done",
        "manual",
        1,
        0,
        10,
        0.0,
        1.0,
        summary={
            "score": 0.8,
            "dimensions": {
                "correct": {"unit": "ratio", "goal": "maximize", "mean": 0.8},
                "cost": {"unit": "raw", "goal": "minimize", "mean": 0.001},
            },
            "target": {"calls": 10, "errors": 2, "cost_usd": 0.016, "latency_ms_p50": 321.0},
        },
    )
    c = Candidate.from_run("fast", run)
    assert c.quality == {"correct": 0.8} and c.score == 0.8
    assert c.cost_usd == 0.002 and c.latency_ms == 321.0 and c.run_id == "r1"


def test_the_plot_is_an_svg_with_every_candidate_and_the_frontier_filled(tmp_path: Path) -> None:
    path = plot_svg([CHEAP, BIG, WORSE, TONE], tmp_path / "plots" / "pareto.svg", title="support <suite>")
    root = ET.fromstring(path.read_text())
    ns = "{http://www.w3.org/2000/svg}"
    circles = {c.find(f"{ns}title").text: c.get("fill") for c in root.iter(f"{ns}circle")}  # type: ignore[union-attr]
    assert circles == {"cheap": "#1f77b4", "big": "#1f77b4", "worse": "white", "tone": "#1f77b4"}
    assert len(list(root.iter(f"{ns}polyline"))) == 1
    assert "support &lt;suite&gt;" in path.read_text()
