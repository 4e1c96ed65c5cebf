"""Skills: versioned, signed, tested units of capability, and the registry that serves them.

What this wing owns:
- the format: `folder` (a skill folder read as a whole), `frontmatter` (SKILL.md, the Agent Skills rules),
  `spec` (skill.yaml, fleetplane's contract), `contract` (the contract as values), `schema` (the JSON
  Schema subset), `guardrails`, `evalcases` (a skill's own eval suite), `semver`;
- packaging and trust: `archive` (deterministic pack/unpack), `signing` (in-toto statement in a DSSE
  envelope, ed25519), `trust` (the trust file: keys, what each may sign, revocations);
- running: `loaded` (one verified skill: `invoke`, `reconcile`), `pyloader` (scripts imported from the
  verified bytes), `prompt` (prompt templates through the gateway over HTTP), `evalrun` (scoring a suite);
- the registry: `blobs` (content-addressed archives under `.fleetplane/`), `channels` (what serves each
  skill, the promotion history), `registry` (publish, promote, canary, rollback, the signing policy;
  audited), `gate` (the eval gate on promote, a Protocol),
  `catalog` (`SkillCatalog`: resolve a name and constraint to a pinned ref, load it verified), `lock`
  (lock files), `outdated`.

A wing: imports the ground floor only (`manifests` for YAML with file:line errors and the safe expression
language, `store` for tables and the audit log, `state` for the clock). Models are called through the
gateway's OpenAI API over HTTP, never its internals. Other wings use the names exported here.
"""

from fleetplane.skills.catalog import SkillCatalog
from fleetplane.skills.contract import Contract, Effects, RetryPolicy, SkillRef, ToolRule
from fleetplane.skills.errors import SkillError, SkillInvalid, TransientError
from fleetplane.skills.evalrun import EvalReport
from fleetplane.skills.gate import EvalGate, GateDecision, ThresholdGate
from fleetplane.skills.loaded import LoadedSkill, SkillContext
from fleetplane.skills.lock import SkillLock
from fleetplane.skills.registry import SkillRegistry
from fleetplane.skills.trust import TrustPolicy

__all__ = [
    "Contract",
    "Effects",
    "EvalGate",
    "EvalReport",
    "GateDecision",
    "LoadedSkill",
    "RetryPolicy",
    "SkillCatalog",
    "SkillContext",
    "SkillError",
    "SkillInvalid",
    "SkillLock",
    "SkillRef",
    "SkillRegistry",
    "ThresholdGate",
    "ToolRule",
    "TransientError",
    "TrustPolicy",
]
