"""The built-in scorer types, registered in `fleetplane.evals.scoring` when this package is imported."""

from fleetplane.evals.scorers import heuristics, match, text, usage

__all__ = ["heuristics", "match", "text", "usage"]
