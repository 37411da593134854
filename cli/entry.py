"""The `shadowlab` console entry point: before anything heavy is imported, a command that loads one stored
experiment from Postgres has its heaviest reads started (`analysis.prefetch`), then the command runs
(`cli.main`). Here, as in `cli.main.settings_of`, the environment is read at the entry point only."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Sequence

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)


def main() -> None:
    try:
        from analysis.prefetch import COMMANDS, start_from_argv

        if sys.argv[1:2] and sys.argv[1] in COMMANDS:
            tune_for_one_experiment()
            fill_config_vars()
        start_from_argv(sys.argv[1:], os.environ)
        from cli.main import main as run
    except KeyboardInterrupt:  # Ctrl-C while the command is still importing: no traceback, the shell's code
        sys.exit(130)
    run()


def tune_for_one_experiment() -> None:
    """For a one-shot command that reads and analyses a whole experiment (`analysis.prefetch.COMMANDS`):
    glibc's allocator in one arena (`one_malloc_arena`), and no cyclic garbage collection. At a million
    replays the collector ran ~300 times (2 full passes over every object made so far), mostly while the
    command imported SciPy, SQLAlchemy and pydantic: 17 % of the import CPU in a py-spy profile, ~0.2 s, and
    it freed nothing that counts (peak RSS 472 vs 471 MB without it). Long-running commands (ingest, replay,
    score, the dashboard) keep the collector."""
    one_malloc_arena()
    gc.disable()


def fill_config_vars() -> None:
    """Fill `sysconfig`'s cache before the prefetch's threads start. Python 3.11 fills it on first use without
    a lock, and a thread that reads it meanwhile sees a partial dict: the prefetch thread's psycopg imports
    zoneinfo, which reads TZPATH from that cache while this thread's SQLAlchemy import is filling it; read as
    missing, no time zone file was found and psycopg printed "unknown PostgreSQL timezone: 'Etc/UTC'; will
    use UTC" on stderr (about 1 run in 12 of `analyze` on Postgres; reproduced with a thread importing
    psycopg beside one importing pydantic and SQLAlchemy)."""
    import sysconfig

    sysconfig.get_config_vars()


def one_malloc_arena(settings: Sequence[tuple[int, int]] | None = None) -> bool:
    """For a command that reads a whole experiment on several threads: glibc's allocator with one arena,
    blocks up to 32 MB from the heap (not mapped one by one) and no trimming below 1 GB, so memory a thread
    frees is reused by the next instead of going back to the system and being faulted in again (at a million
    replays: ~250k → ~160k page faults, ~0.5 s less system time, peak RSS 640 → 515 MB). False where there
    is no `mallopt` (not glibc: macOS, musl), or when glibc refuses a setting (it answers 0)."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    wanted = settings or ((M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 1 << 30))
    return all(mallopt(parameter, value) == 1 for parameter, value in wanted)


if __name__ == "__main__":
    main()
