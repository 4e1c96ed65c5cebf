"""The runtime's settings from the environment, and their errors (what `fleetplane up` prints)."""

from __future__ import annotations

import pytest

from fleetplane.runtime.replica import Backoff
from fleetplane.runtime.service import RuntimeSettings


def test_defaults_and_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = RuntimeSettings.from_env(gateway_url="http://127.0.0.1:8700")
    assert (settings.enabled, settings.backoff, settings.invoke_wait) == (True, Backoff(), 10.0)
    monkeypatch.setenv("FLEETPLANE_RESTART_BACKOFF", "0.5")
    monkeypatch.setenv("FLEETPLANE_INVOKE_WAIT", "3")
    monkeypatch.setenv("FLEETPLANE_AGENTS", "false")
    settings = RuntimeSettings.from_env()
    assert (settings.enabled, settings.backoff, settings.invoke_wait) == (False, Backoff(0.5, 300.0), 3.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "FLEETPLANE_RESTART_BACKOFF",
            "soon",
            "FLEETPLANE_RESTART_BACKOFF='soon' is not a number of seconds",
        ),
        ("FLEETPLANE_INVOKE_WAIT", "0", "FLEETPLANE_INVOKE_WAIT='0': expected more than 0 seconds"),
        ("FLEETPLANE_AGENTS", "maybe", "FLEETPLANE_AGENTS='maybe': expected true or false"),
    ],
)
def test_bad_values_say_what_and_expected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as error:
        RuntimeSettings.from_env()
    assert str(error.value) == message
