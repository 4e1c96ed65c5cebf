"""The human review queue (`queue`), its HTTP API (`api`) and calibration of judges and scorers against the
human labels (`calibration`). Items come from the online evaluator: flagged, judge-uncertain, audit slice.
"""

from fleetplane.evals.review.calibration import Agreement, agreement
from fleetplane.evals.review.queue import Label, ReviewError, ReviewItem, ReviewQueue

__all__ = ["Agreement", "Label", "ReviewError", "ReviewItem", "ReviewQueue", "agreement"]
