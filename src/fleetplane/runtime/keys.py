"""Each agent's virtual key: issued through the store's key API, so the gateway's quotas and breakers
apply to the agent's model calls without the agent knowing.

The key is named `agent:<name>` (a manifest name cannot hold ':', so it never clashes with a
VirtualKey), stands for the agent in its team, and gets a fresh secret each time this server starts (only
a hash is stored; the secret lives in memory and reaches the sandbox's bridge, never the sandbox).
"""

from __future__ import annotations

from fleetplane.manifests.agent import Agent
from fleetplane.store.applied import AppliedRepository
from fleetplane.store.db import Store
from fleetplane.store.keys import KeyRepository, NewKey, new_secret

KEY_SOURCE = "runtime"


class KeyProblem(Exception):
    """The agent's key cannot be issued (no team to charge it to)."""


def key_name(agent: str) -> str:
    return f"agent:{agent}"


class AgentKeys:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._repo = KeyRepository(store)
        self._secrets: dict[str, tuple[str, str]] = {}  # agent → (team, secret)

    async def _team(self, agent: Agent) -> tuple[str, str]:
        """(team, organization) the agent is charged to: its `team`, or the only team applied."""
        applied = await AppliedRepository(self._store).all()
        teams = {name: doc.document for (kind, name), doc in applied.items() if kind == "Team"}
        team = agent.spec.team
        if team is None:
            if len(teams) != 1:
                raise KeyProblem(
                    f"Agent/{agent.name}: spec.team is not set and {len(teams)} teams are applied; "
                    "name the team its model calls are charged to"
                )
            team = next(iter(teams))
        if team not in teams:
            raise KeyProblem(f"Agent/{agent.name}: spec.team {team!r} is not an applied Team")
        return team, str(teams[team]["spec"]["organization"])

    async def secret(self, agent: Agent, *, now: float) -> str:
        """The agent's key secret, issuing the key (or a fresh secret for it) on first use."""
        team, organization = await self._team(agent)
        held = self._secrets.get(agent.name)
        if held is not None and held[0] == team:
            return held[1]
        name = key_name(agent.name)
        identity = NewKey(
            name=name, organization=organization, team=team, agent=agent.name, source=KEY_SOURCE
        )
        secret = new_secret()
        if await self._repo.get(name) is None:
            await self._repo.create(identity, secret=secret, now=now)
        else:
            await self._repo.update_identity(name, identity)
            await self._repo.set_secret(name, secret, now=now)
        self._secrets[agent.name] = (team, secret)
        return secret

    async def revoke(self, agent: str, *, now: float) -> None:
        """The agent is gone: its key stops working."""
        self._secrets.pop(agent, None)
        await self._repo.revoke(key_name(agent), now=now)
