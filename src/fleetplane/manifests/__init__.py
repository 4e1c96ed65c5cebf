"""Desired state: manifest kinds (pydantic), the YAML loader with file:line errors, diffs and apply plans.

Ground floor: imports nothing else from fleetplane.
"""
