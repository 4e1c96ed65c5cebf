"""fleetplane: run fleets of AI agents in production.

The package is a house with floors (see docs/architecture.md): ground (`manifests`, `store`, `state`,
`telemetry`), wings (`gateway`, `sim`, ...), and the top (`server`, `cli`) that composes them.
"""

__version__ = "0.1.0"
