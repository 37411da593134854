"""A real HTTP server faking the Anthropic Messages API and OpenAI chat completions (DESIGN §5).

Deterministic answers by seed, arm, replayed capture and request; per-model profiles; fault injection by
rate or header.
"""

from simulator.profiles import (
    FAULTS,
    Distribution,
    Fault,
    FaultRates,
    ModelProfile,
    ProfileSet,
    load_profiles,
)
from simulator.runner import RunningSimulator, running_simulator, serve_forever
from simulator.server import (
    HEADER_ARM,
    HEADER_CAPTURE_ID,
    HEADER_FAULT,
    HEADER_INJECTED_TTFB,
    HEADER_INJECTED_TTFT,
    HEADER_QUALITY,
    HEADER_RETRY_AFTER,
    HEADER_STALL_MS,
    HEADER_TTFB_MS,
    HEADER_TTFT_MS,
    SimRecord,
    Simulator,
)

__all__ = [
    "FAULTS",
    "HEADER_ARM",
    "HEADER_CAPTURE_ID",
    "HEADER_FAULT",
    "HEADER_INJECTED_TTFB",
    "HEADER_INJECTED_TTFT",
    "HEADER_QUALITY",
    "HEADER_RETRY_AFTER",
    "HEADER_STALL_MS",
    "HEADER_TTFB_MS",
    "HEADER_TTFT_MS",
    "Distribution",
    "Fault",
    "FaultRates",
    "ModelProfile",
    "ProfileSet",
    "RunningSimulator",
    "SimRecord",
    "Simulator",
    "load_profiles",
    "running_simulator",
    "serve_forever",
]
