"""Shared hot state: clocks, the cache, cooldown marks, counters and leases.

In-process by default, Redis by URL (`FLEETPLANE_REDIS_URL`), shared by every gateway replica.
Ground floor: imports nothing else from fleetplane.
"""
