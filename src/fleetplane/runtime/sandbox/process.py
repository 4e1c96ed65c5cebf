"""The `process` tier: the agent on the host's namespaces, held by its cgroup and rlimits only.

For trusted code: it sees the host filesystem (with the supervisor's rights) and network. Its secrets
live in a private directory on /dev/shm (a tmpfs), named by FLEETPLANE_SECRETS_DIR.
"""

from __future__ import annotations

import os
import resource

from fleetplane.runtime.replica import ReplicaSpec, Tier
from fleetplane.runtime.sandbox import (
    FORWARDER,
    Availability,
    LaunchPlan,
    ReplicaPaths,
    base_env,
    forwarder_config,
    host_python,
)
from fleetplane.runtime.sandbox.files import write_secret_files


class ProcessSandbox:
    tier: Tier = "process"

    def availability(self) -> Availability:
        return Availability("process", True, "cgroup and rlimits only (trusted agents)")

    def plan(self, spec: ReplicaSpec, paths: ReplicaPaths) -> LaunchPlan:
        secrets = write_secret_files(spec, paths, uid=os.getuid())
        env = base_env(spec, str(secrets))
        config = forwarder_config(spec, str(paths.run_dir), shared_net=True)
        argv = [host_python(), "-I", "-S", str(FORWARDER), config, "--", *spec.argv]
        disk = spec.resources.disk_bytes
        return LaunchPlan(
            argv=argv,
            env=env,
            cwd=spec.cwd,
            rlimits={resource.RLIMIT_CORE: (0, 0), resource.RLIMIT_FSIZE: (disk, disk)},
        )
