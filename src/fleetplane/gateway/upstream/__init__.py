"""Calling upstream providers: pooled async HTTP (aiohttp, chosen by benchmark: docs/benchmarks.md)."""
