"""Simulator timing for tests: fast and fault-free, so a test waits on requests, not on the profile."""

from __future__ import annotations

from simulator import Distribution, ModelProfile

FAST = ModelProfile(
    ttfb_ms=Distribution(median=2),
    ttft_ms=Distribution(median=5),
    tokens_per_s=20_000,
    output_tokens=Distribution(median=40, sigma=0.3, low=10, high=80),
    cache_min_tokens=100,
    stall_ms=3_000,
)
