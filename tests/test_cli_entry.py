"""The console entry point (`cli.entry`): glibc's allocator settings for the commands that read a whole
experiment (each check in a fresh interpreter: the settings are process-wide)."""

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
