"""The path a request is attributed to: organization / team / (user | customer) / agent, and its key."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase


@dataclass(frozen=True)
class Tenant:
    key_id: str
    key_name: str
    organization: str
    team: str
    user: str | None
    customer: str | None
    agent: str | None
    models: tuple[str, ...]

    def scopes(self) -> list[tuple[str, str]]:
        """Every level this request charges, outermost first, as (level, id) pairs."""
        out = [("org", self.organization), ("team", f"{self.organization}/{self.team}")]
        if self.user:
            out.append(("user", f"{self.organization}/{self.team}/user:{self.user}"))
        if self.customer:
            out.append(("customer", f"{self.organization}/customer:{self.customer}"))
        if self.agent:
            out.append(("agent", f"{self.organization}/{self.team}/agent:{self.agent}"))
        out.append(("key", self.key_id))
        return out

    @property
    def namespace(self) -> str:
        """Whose cached answers a request may see: the same team and the same user or customer."""
        who = f"user:{self.user}" if self.user else f"customer:{self.customer}" if self.customer else "-"
        return f"{self.organization}/{self.team}/{who}"

    def may_use(self, *names: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.models for name in names if name)
