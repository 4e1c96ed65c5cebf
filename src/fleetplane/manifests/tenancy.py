"""Who a request is attributed to: an organization, its teams, and a user or a customer of a team.

With the agent a virtual key names, every request carries the path org/team/(user|customer)/agent, and
each level is a scope that quotas and breakers can hang on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fleetplane.manifests.document import Manifest, kind
from fleetplane.manifests.fields import Name, Strict
from fleetplane.manifests.limits import QuotaLimits, TimeZone


class OrganizationSpec(Strict):
    display_name: str | None = None
    # Calendar windows (dollars per day and per month) turn over at midnight in this time zone.
    time_zone: TimeZone = "UTC"
    quota: QuotaLimits | None = None  # shared by every request of the organization


@kind
class Organization(Manifest):
    KIND = "Organization"
    kind: Literal["Organization"]
    spec: OrganizationSpec = Field(default_factory=OrganizationSpec)


class TeamSpec(Strict):
    organization: Name
    display_name: str | None = None
    quota: QuotaLimits | None = None  # shared by every request of the team


@kind
class Team(Manifest):
    KIND = "Team"
    kind: Literal["Team"]
    spec: TeamSpec


class UserSpec(Strict):
    """A person inside the organization, who belongs to one team."""

    team: Name
    email: str | None = None
    quota: QuotaLimits | None = None


@kind
class User(Manifest):
    KIND = "User"
    kind: Literal["User"]
    spec: UserSpec


class CustomerSpec(Strict):
    """An end customer of the organization's product, served through one team's agents."""

    organization: Name
    display_name: str | None = None
    quota: QuotaLimits | None = None


@kind
class Customer(Manifest):
    KIND = "Customer"
    kind: Literal["Customer"]
    spec: CustomerSpec
