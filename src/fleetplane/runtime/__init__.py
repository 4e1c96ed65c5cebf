"""The runtime wing: agents as containers.

Owns the supervisor (one per replica: a fresh cgroup per start, limits read back, exits classified,
CrashLoopBackOff restarts, a child subreaper), the sandbox tiers (process, bwrap, gvisor, microvm probe),
the network bridge (the sandbox reaches only the gateway; the host reaches the agent through a unix
socket), probes and per-replica logs — and, on top, the reconciler, revisions, rollouts, autoscaling,
the invoke balancer and the Kubernetes renderer.

May import the ground floor (manifests, store, state, telemetry); never another wing's internals.
The contract the control loop codes against is `fleetplane.runtime.replica`.
"""
