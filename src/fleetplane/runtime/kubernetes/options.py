"""What a render needs beyond the manifests: the namespace, the images, where shared services live."""

from __future__ import annotations

from dataclasses import dataclass, field

# An Agent names its container image here (metadata.annotations), pinned by digest. The Agent kind has no
# image field: locally an agent runs a command on the host; only Kubernetes needs an image.
IMAGE_ANNOTATION = "fleetplane.dev/image"
GATEWAY_PORT = 8700  # `fleetplane up`'s default port, inside the gateway pods too


@dataclass(frozen=True)
class RenderOptions:
    namespace: str = "fleetplane"
    # The fleetplane image (gateway, and the runner of declarative agents), pinned by digest.
    gateway_image: str | None = None
    # The image declarative agents run in (`fleetplane agent serve`); default: the gateway image.
    runner_image: str | None = None
    # Images named at render time (`--image AGENT=REF`), over the Agent's annotation.
    agent_images: dict[str, str] = field(default_factory=dict)
    gateway_replicas: int = 2
    revision_history_limit: int = 10
    # Where KEDA's prometheus scaler reads the in-flight gauge (scale to zero needs KEDA).
    prometheus_url: str = "http://prometheus-server.monitoring.svc.cluster.local"
    # The OTLP/HTTP endpoint agents export to; default: the gateway's own receiver.
    otel_endpoint: str | None = None
    cluster_domain: str = "cluster.local"

    @property
    def gateway_url(self) -> str:
        return f"http://fleetplane-gateway.{self.namespace}.svc.{self.cluster_domain}"
