"""The `fleetplane` command: one module per command group, composed here. Top floor."""

from fleetplane.cli.app import main

__all__ = ["main"]
