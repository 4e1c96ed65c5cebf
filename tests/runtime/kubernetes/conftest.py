"""Fixtures for the Kubernetes backend: the test fleet, render options, and the kmock in-memory
Kubernetes API emulator serving real HTTP on a random port (there is no cluster on these machines)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetplane.manifests.desired import DesiredState
from fleetplane.manifests.loader import load
from fleetplane.runtime.kubernetes import RenderOptions

FLEET = Path(__file__).parent / "fleet"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLE_FLEET = Path(__file__).parents[3] / "examples" / "fleet"
DIGEST = "sha256:" + "ab" * 32
GATEWAY_IMAGE = f"ghcr.io/acme/fleetplane:0.1.0@{DIGEST}"


@pytest.fixture
def fleet() -> DesiredState:
    return load(FLEET)


@pytest.fixture
def options() -> RenderOptions:
    return RenderOptions(namespace="agents", gateway_image=GATEWAY_IMAGE)


class Emulator:
    """kmock's KubernetesEmulator in a thread of its own (lightkube's client here is synchronous)."""

    def __init__(self) -> None:
        import kmock

        class ServerSideApply(kmock.KubernetesEmulator):  # type: ignore[misc]
            # kmock treats every PATCH as an update of an existing object; a real API server's
            # server-side apply (PATCH application/apply-patch+yaml) creates a missing one. Emulate that.
            async def _handle(self, request: Any) -> Any:
                if request.resource is not None and request.action == kmock.action.UPDATE and request.name:
                    key = (request.resource, request.namespace, request.name)
                    if "apply-patch" in request.headers.get("Content-Type", "") and (
                        key not in self._objects or self._objects[key].deleted
                    ):
                        async with self._lock:
                            if key in self._objects:
                                self._objects[key].create(request.data)
                            else:
                                self._objects[key] = request.data
                return await super()._handle(request)

        self._kmock = kmock
        self._cls = ServerSideApply
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.url = ""
        self.handler: Any = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        async with self._cls() as handler, self._kmock.Server(handler) as server:
            self.handler = handler
            self.url = str(server.url).rstrip("/")
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the kmock emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path, namespace: str) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "kmock"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "tester", "namespace": namespace}}
            ],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        return path

    def objects(self, plural: str) -> dict[str, dict[str, Any]]:
        """The live (not deleted) objects of a resource, by name."""
        out = {}
        for (resource, _namespace, name), obj in list(self.handler.objects.items()):
            if resource.plural == plural and not obj.deleted:
                out[name] = obj.raw
        return out


def need(module: str, install: str) -> None:
    """Skip without `module` (a package of the test extra), except under CI=true, where it must be there."""
    if IN_CI:
        __import__(module)
    else:
        pytest.importorskip(module, reason=f"pip install '{install}'")


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    need("kmock", "fleetplane[test]")
    need("lightkube", "fleetplane[kubernetes]")
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    with Emulator() as emulator:
        yield emulator
