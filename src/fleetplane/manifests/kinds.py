"""Every manifest kind, imported so each registers itself in `KINDS`."""

from fleetplane.manifests.agent import Agent, AgentSpec
from fleetplane.manifests.breaker import Breaker, BreakerSpec
from fleetplane.manifests.document import API_VERSION, KINDS, Manifest
from fleetplane.manifests.evalsuite import EvalSuite, EvalSuiteSpec
from fleetplane.manifests.model import Deployment, Model, ModelSpec
from fleetplane.manifests.pipeline import Pipeline
from fleetplane.manifests.provider import Provider, ProviderSpec
from fleetplane.manifests.quota import Quota, QuotaSpec
from fleetplane.manifests.tenancy import Customer, Organization, Team, User
from fleetplane.manifests.virtual_key import VirtualKey, VirtualKeySpec

__all__ = [
    "API_VERSION",
    "KINDS",
    "Agent",
    "AgentSpec",
    "Breaker",
    "BreakerSpec",
    "Customer",
    "Deployment",
    "EvalSuite",
    "EvalSuiteSpec",
    "Manifest",
    "Model",
    "ModelSpec",
    "Organization",
    "Pipeline",
    "Provider",
    "ProviderSpec",
    "Quota",
    "QuotaSpec",
    "Team",
    "User",
    "VirtualKey",
    "VirtualKeySpec",
]
