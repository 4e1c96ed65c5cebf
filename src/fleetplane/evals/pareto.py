"""Model selection: run a suite over candidate models and keep the non-dominated set on quality (each
dimension), cost and latency.

A candidate dominates another when it is at least as good on every quality dimension (a higher mean),
costs no more per call and answers no slower (p50), and is strictly better on at least one of them. The
frontier is every candidate nothing dominates; `plot_svg` draws quality (the suite's weighted score)
against cost per call, latency as each point's label, frontier points filled and joined.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetplane.evals.results import Run


@dataclass(frozen=True)
class Candidate:
    name: str
    quality: dict[str, float]  # dimension -> mean in [0, 1] (higher is better)
    score: float  # the suite's weighted score
    cost_usd: float  # per call
    latency_ms: float  # p50
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_run(cls, name: str, run: Run) -> Candidate:
        summary = run.summary or {}
        dims = summary.get("dimensions") or {}
        quality = {
            d: float(v["mean"])
            for d, v in dims.items()
            if v.get("unit") == "ratio" and v.get("goal", "maximize") == "maximize" and "mean" in v
        }
        target = summary.get("target") or {}
        calls = max(1, int(target.get("calls") or 0) - int(target.get("errors") or 0))
        cost = float(target.get("cost_usd") or 0.0) / calls
        return cls(
            name,
            quality,
            float(summary.get("score") or 0.0),
            cost,
            float(target.get("latency_ms_p50") or 0.0),
            run.id,
        )


def dominates(a: Candidate, b: Candidate) -> bool:
    dims = set(a.quality) | set(b.quality)
    at_least = all(a.quality.get(d, 0.0) >= b.quality.get(d, 0.0) for d in dims) and (
        a.cost_usd <= b.cost_usd and a.latency_ms <= b.latency_ms
    )
    better = any(a.quality.get(d, 0.0) > b.quality.get(d, 0.0) for d in dims) or (
        a.cost_usd < b.cost_usd or a.latency_ms < b.latency_ms
    )
    return at_least and better


def frontier(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The non-dominated candidates, in the order given."""
    return [c for c in candidates if not any(dominates(o, c) for o in candidates if o is not c)]


def dominated_by(candidate: Candidate, candidates: Sequence[Candidate]) -> list[str]:
    return [o.name for o in candidates if o is not candidate and dominates(o, candidate)]


async def run_candidates(models: Sequence[str], run_one: Callable[[str], Awaitable[Run]]) -> list[Candidate]:
    """Run the suite once per model (`run_one(model)`, e.g. evals' `run_suite` on a chat target)."""
    return [Candidate.from_run(model, await run_one(model)) for model in models]


def plot_svg(candidates: Sequence[Candidate], path: Path, *, title: str = "") -> Path:
    """Quality (weighted score) against cost per call; frontier points filled and joined."""
    width, height, pad = 640, 420, 60
    best = {c.name for c in frontier(candidates)}
    costs = [c.cost_usd for c in candidates] or [0.0]
    lo_x, hi_x = min(costs), max(costs)
    span_x = (hi_x - lo_x) or max(hi_x, 1e-9)

    def x(cost: float) -> float:
        return pad + (cost - lo_x + span_x * 0.05) / (span_x * 1.1) * (width - 2 * pad)

    def y(score: float) -> float:
        return height - pad - score * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="black"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>',
        f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">cost per call (USD)</text>',
        f'<text x="18" y="{height / 2}" transform="rotate(-90 18 {height / 2})" text-anchor="middle">quality '
        "(weighted score)</text>",
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="14">{html.escape(title)}</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{pad - 8}" y="{y(tick) + 4}" text-anchor="end">{tick:.2f}</text>')
    for cost in (lo_x, hi_x):
        parts.append(f'<text x="{x(cost)}" y="{height - pad + 16}" text-anchor="middle">{cost:.6f}</text>')
    line = sorted((c for c in candidates if c.name in best), key=lambda c: c.cost_usd)
    if len(line) > 1:
        points = " ".join(f"{x(c.cost_usd):.1f},{y(c.score):.1f}" for c in line)
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-dasharray="4 3"/>')
    for c in candidates:
        fill = "#1f77b4" if c.name in best else "white"
        parts.append(
            f'<circle cx="{x(c.cost_usd):.1f}" cy="{y(c.score):.1f}" r="6" fill="{fill}" stroke="#1f77b4" '
            f'stroke-width="2"><title>{html.escape(c.name)}</title></circle>'
        )
        parts.append(
            f'<text x="{x(c.cost_usd) + 9:.1f}" y="{y(c.score) - 8:.1f}">{html.escape(c.name)} '
            f"({c.latency_ms:.0f} ms)</text>"
        )
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")
    return path
