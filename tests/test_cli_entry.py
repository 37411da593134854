"""The console entry point (`cli.entry`): glibc's allocator settings and the garbage collector for the
commands that read a whole experiment (each check in a fresh interpreter: the settings are process-wide)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


def _entry(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", f"import cli.entry as e; {code}"], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


@glibc
def test_the_allocator_takes_one_arena_and_big_blocks_from_the_heap() -> None:
    assert _entry("print(e.one_malloc_arena())") == "True"


@glibc
def test_a_setting_glibc_refuses_is_reported() -> None:
    # M_MXFAST (1): fast bins hold at most 160 bytes on 64-bit; a megabyte is refused (answers 0)
    assert _entry("print(e.one_malloc_arena([(e.M_ARENA_MAX, 1), (1, 1 << 20)]))") == "False"


def test_only_the_one_experiment_commands_run_without_the_cyclic_collector() -> None:
    check = "import gc, sys; sys.argv = ['shadowlab', {command!r}, '--help']; e.main()"
    shown = "import atexit, gc; atexit.register(lambda: print('collector', gc.isenabled()))"
    for command, enabled in (("analyze", False), ("gate", False), ("ingest", True), ("score", True)):
        code = f"{shown}; {check.format(command=command)}"
        done = subprocess.run([sys.executable, "-c", f"import cli.entry as e; {code}"], capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert done.stdout.strip().splitlines()[-1] == f"collector {enabled}", (command, done.stderr)
