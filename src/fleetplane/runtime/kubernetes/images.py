"""Container images: which one an agent runs, and whether it is pinned by digest."""

from __future__ import annotations

import re

from fleetplane.manifests.agent import Agent
from fleetplane.runtime.kubernetes.options import IMAGE_ANNOTATION, RenderOptions

_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:-]*@sha256:[0-9a-f]{64}$")


def is_pinned(image: str) -> bool:
    """`registry/repo[:tag]@sha256:<64 hex>`: the same bytes on every node and every rollback."""
    return bool(_PINNED.match(image))


def pin_problem(image: str | None, where: str) -> str | None:
    """Why `image` cannot be deployed, or None."""
    if not image:
        return f"{where}: no image"
    if not is_pinned(image):
        return (
            f"{where}: image {image!r} is not pinned by digest "
            "(expected repo@sha256:<64 hex digits>; a tag can move under a rollback)"
        )
    return None


def agent_image(agent: Agent, options: RenderOptions) -> tuple[str | None, str]:
    """The image an agent's pods run and where that choice was made (for messages)."""
    if agent.name in options.agent_images:
        return options.agent_images[agent.name], f"--image {agent.name}=..."
    annotated = agent.metadata.annotations.get(IMAGE_ANNOTATION)
    if annotated:
        return annotated, f"Agent/{agent.name}: metadata.annotations[{IMAGE_ANNOTATION!r}]"
    if agent.spec.declarative is not None:
        return options.runner_image or options.gateway_image, f"Agent/{agent.name}: the runner image"
    return None, f"Agent/{agent.name}: metadata.annotations[{IMAGE_ANNOTATION!r}]"
