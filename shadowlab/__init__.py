"""shadowlab: prove an LLM model switch is safe before cutover."""

import os

__version__ = "0.1.0"

# The analysis runs BLAS on one thread unless told otherwise, set before numpy loads OpenBLAS: its sums of
# half a million values (a dot product of residuals) then do not depend on how many cores the machine has
# (split over threads they differ in the last digits), and on a 2-core machine its spinning threads cost
# ~0.3 s of CPU per analysis of a million replays. Every entry point (the CLI, the dashboard, the tests)
# imports this package before numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
