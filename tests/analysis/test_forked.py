"""A computation on the other core (`analysis.forked`): the child's answer, or the parent's when the child
fails; never a fork beside other threads. Each case runs in a fresh process (one thread: forking allowed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(body: str) -> str:
    code = "import os, threading\nfrom analysis.forked import Forked, can_fork\n" + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_result_is_computed_by_the_child() -> None:
    out = _run("""
        parent = os.getpid()
        with Forked(lambda: (os.getpid(), [1.5, "x"])) as work:
            assert work.forked
            pid, value = work.result()
        print(pid != parent, value)
    """)
    assert out == "True [1.5, 'x']\n"


def test_a_child_that_fails_or_is_killed_leaves_the_work_to_the_parent() -> None:
    out = _run("""
        parent = os.getpid()
        def fails():
            if os.getpid() != parent:
                raise RuntimeError("only in the child")
            return "parent's"
        def killed():
            if os.getpid() != parent:
                os.kill(os.getpid(), 9)
            return "parent's too"
        print(Forked(fails).result(), Forked(killed).result())
    """)
    assert out == "parent's parent's too\n"


def test_no_fork_beside_another_thread_and_an_unwanted_child_is_stopped() -> None:
    out = _run("""
        import time
        gate = threading.Event()
        other = threading.Thread(target=gate.wait)
        other.start()
        inline = Forked(os.getpid)
        print(can_fork(), inline.forked, inline.result() == os.getpid())
        gate.set(); other.join()
        with Forked(lambda: time.sleep(3600)) as stuck:
            pid = stuck.child
        try:
            os.kill(pid, 0)
            print("still running")
        except ProcessLookupError:
            print("stopped")
    """)
    assert out == "False False True\nstopped\n"
