"""The AI gateway: OpenAI- and Anthropic-compatible APIs, virtual-key auth, the policy chain
(L1 quotas, L2 breakers, L3 fallback routing, cache) and the upstream clients.

A wing: imports the ground floor (`manifests`, `store`, `state`, `telemetry`), never another wing.
"""
