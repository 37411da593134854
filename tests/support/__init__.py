"""Shared test code: fakes, stand-ins, builders, seeders and constants imported by tests.

One way to share: fixtures live in conftest.py files (pytest finds them; never import a conftest), and
everything else a second test module needs lives here, imported as `from tests.support.x import ...`.
No test imports another test module or a `bench/` script; a simulation a benchmark also runs is product
code (`analysis.stats.calibration`, `analysis.stats.peeking`, `demo.repeated_prompts`).
"""
