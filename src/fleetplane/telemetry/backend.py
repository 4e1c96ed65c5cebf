"""The embedded telemetry backend of one fleetplane server process: its own pipeline (spans and
events straight into the span store, metrics for `/metrics`, OTLP export when configured), the OTLP
receiver other processes (agents) send to, and the drift signal kept fresh as a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Observation
from starlette.routing import Route

from fleetplane.store.db import Store
from fleetplane.telemetry.drift import DriftSignal, drift
from fleetplane.telemetry.prometheus import PrometheusReader, prometheus_route
from fleetplane.telemetry.receiver import Receiver
from fleetplane.telemetry.setup import Telemetry
from fleetplane.telemetry.sink import StoreLogExporter, StoreSpanExporter

log = logging.getLogger("fleetplane.telemetry")

DRIFT_EVERY = 60.0
DRIFT_WINDOW = 3600.0  # the current window; the reference is the day before it


@dataclass
class Backend:
    telemetry: Telemetry
    receiver: Receiver
    prometheus: PrometheusReader
    drift_every: float = DRIFT_EVERY
    signals: list[DriftSignal] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @classmethod
    def create(
        cls, store: Store, *, service_name: str = "fleetplane", environ: Mapping[str, str] | None = None
    ) -> Backend:
        env = os.environ if environ is None else environ
        receiver = Receiver.from_env(store, env)
        prometheus = PrometheusReader()
        telemetry = Telemetry.create(
            service_name,
            span_sinks=[StoreSpanExporter(receiver.spans)],
            log_sinks=[StoreLogExporter(receiver.spans)],
            metric_readers=[prometheus],
            environ=env,
        )
        backend = cls(telemetry, receiver, prometheus)
        telemetry.meter.create_observable_gauge(
            "fleetplane.drift.output_length_psi",
            callbacks=[backend._observe_drift],
            unit="1",
            description="Population stability index of output length, current hour against the day before.",
        )
        return backend

    def routes(self) -> list[Route]:
        return [*self.receiver.routes(), prometheus_route(self.prometheus)]

    def _observe_drift(self, options: CallbackOptions) -> Iterable[Observation]:
        for signal in self.signals:
            if signal.length_psi is not None:
                yield Observation(signal.length_psi, {"gen_ai.agent.name": signal.subject})

    async def refresh_drift(self, now: float | None = None) -> list[DriftSignal]:
        end = time.time() if now is None else now
        current = (end - DRIFT_WINDOW, end)
        reference = (end - DRIFT_WINDOW - 86400.0, end - DRIFT_WINDOW)
        self.signals = await drift(self.receiver.spans.store, reference=reference, current=current)
        return self.signals

    async def _watch_drift(self) -> None:
        while True:
            try:
                await self.refresh_drift()
            except Exception as exc:
                log.warning("could not compute drift: %s", exc)
            await asyncio.sleep(self.drift_every)

    async def start(self) -> None:
        await self.receiver.start()
        self._task = asyncio.create_task(self._watch_drift(), name="fleetplane-drift")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Our own spans first (they land in the span store's queue), then the store writes its queue.
        await asyncio.to_thread(self.telemetry.shutdown, 5.0)
        await self.receiver.stop()
