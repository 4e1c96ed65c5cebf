"""The built-in scorer types, registered in `fleetplane.evals.scoring` when this package is imported."""

from fleetplane.evals.scorers import checks, embedding, heuristics, match, text, usage

__all__ = ["checks", "embedding", "heuristics", "match", "text", "usage"]
