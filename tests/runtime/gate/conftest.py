"""The rollout gate's tests reuse the control plane's fixtures (the fake launcher, the store, the fleet
directory): its conftest is loaded by path, so one set of fakes serves both."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).parents[1] / "control" / "conftest.py"
_spec = importlib.util.spec_from_file_location("fleetplane_control_fixtures", _path)
assert _spec is not None and _spec.loader is not None
control = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = control
_spec.loader.exec_module(control)

launcher = control.launcher
store = control.store
fleet = control.fleet
