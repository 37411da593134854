"""Where a benchmark's CPU went on the machine: its clients, one database's Postgres processes, the Kafka
broker and the rest, sampled from /proc (Linux).

A window's edges are samples taken by the measuring thread at those moments (`mark()`): the samples every
`interval` in between only follow processes that come and go (bracketed by them, a 0.37-0.50 s bare-consumer
window grew by 0.06-0.10 s of mostly idle time: its consumer µs per capture read 6-10 % low). /proc counts
CPU in ticks of 10 ms: a few ticks' worth (a short window's broker) is a rough figure.
A process that ends inside a window counts up to its last sample (at most `interval` of CPU lost); one born
inside counts from zero. Postgres's shared processes (WAL writer, checkpointer, background writer) count to
Postgres, and the broker is the machine's one: the benchmark's writes are what keeps them busy only when
nothing else runs (other benchmarks, tests) beside it.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_SHARED_POSTGRES = ("postgres: walwriter", "postgres: checkpointer", "postgres: background writer")


_BOOT = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
             if line.startswith("btime"))  # fmt: skip


def proc_cpu(pid: int) -> tuple[float, int, float] | None:
    """(user + system seconds, parent pid, start time in epoch seconds) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[1]), _BOOT + int(fields[19]) / _TICK


def _cpu_s(pid: int) -> float | None:
    got = proc_cpu(pid)
    return None if got is None else got[0]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def machine_s() -> tuple[float, float]:
    """(idle + iowait, total) CPU seconds of the machine since boot, all cores, from /proc/stat."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (ticks[3] + ticks[4]) / _TICK, sum(ticks) / _TICK


def _busy_s() -> float:
    """CPU seconds the machine spent not idle (all cores)."""
    idle, total = machine_s()
    return total - idle


@dataclass(frozen=True)
class Split:
    """CPU seconds by component over one window, and the window's length."""

    seconds: float
    busy: float
    clients: float
    postgres: float
    broker: float

    @property
    def rest(self) -> float:
        return self.busy - self.clients - self.postgres - self.broker

    def per_item_us(self, items: int) -> dict[str, float]:
        per = 1e6 / items
        return {"clients": self.clients * per, "postgres": self.postgres * per, "broker": self.broker * per,
                "rest": self.rest * per, "machine": self.busy * per}  # fmt: skip


class CpuSplit(threading.Thread):
    """Samples every `interval` s, from `start()` to `stop()`: the CPU of `clients()` (pids; a callable, as
    child processes come and go), of the Postgres processes serving `database`, and of the Kafka broker;
    `between()` then splits any window inside."""

    def __init__(
        self, database: str | None, clients: Callable[[], Iterable[int]], interval: float = 0.1
    ) -> None:
        super().__init__(daemon=True, name="cpu-split")
        self.database, self.clients, self.interval = database, clients, interval
        self._done = threading.Event()
        self._first: dict[int, float] = {}  # each process's CPU when first seen (0 if born inside)
        self._last: dict[int, float] = {}
        self._kind: dict[int, str] = {}
        self._samples: list[tuple[float, Split]] = []  # cumulative since this object was made
        self._lock = threading.Lock()  # `mark()` samples from the measuring thread
        self._busy0 = _busy_s()
        self._scan(born_inside=False)
        self._sample(born_inside=False)

    def _scan(self, *, born_inside: bool) -> None:
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (pid := int(entry)) in self._kind:
                continue
            line = _cmdline(pid)
            if line.startswith(_SHARED_POSTGRES) or (
                self.database is not None and line.startswith("postgres: ") and f" {self.database} " in line
            ):
                self._kind[pid] = "postgres"
            elif "kafka.Kafka" in line and line.startswith("java"):
                self._kind[pid] = "broker"
            else:
                continue
            if (cpu := _cpu_s(pid)) is not None:
                self._first[pid] = 0.0 if born_inside else cpu
                self._last[pid] = cpu

    def run(self) -> None:
        rescan = 0.0
        while not self._done.wait(self.interval):
            now = time.perf_counter()
            with self._lock:
                if now - rescan >= 1.0:  # new backends: one scan of /proc a second
                    self._scan(born_inside=True)
                    rescan = now
                self._sample()

    def _sample(self, *, born_inside: bool = True) -> None:
        for pid in self.clients():
            if pid not in self._kind and (cpu := _cpu_s(pid)) is not None:
                self._kind[pid] = "clients"
                self._first[pid] = 0.0 if born_inside else cpu
        for pid in list(self._kind):
            if (cpu := _cpu_s(pid)) is not None:
                self._last[pid] = cpu
        used = {"clients": 0.0, "postgres": 0.0, "broker": 0.0}
        for pid, kind in self._kind.items():
            if pid in self._last:
                used[kind] += self._last[pid] - self._first.get(pid, 0.0)
        self._samples.append((time.perf_counter(), Split(0.0, _busy_s() - self._busy0, **used)))

    def mark(self) -> float:
        """A sample now, at a window's edge: its time (`time.perf_counter()`), for `between`."""
        with self._lock:
            self._sample()
            return self._samples[-1][0]

    def stop(self) -> None:
        self._done.set()
        self.join()
        self._sample()

    def between(self, start: float, end: float) -> Split:
        """The CPU used from `start` to `end` (`time.perf_counter()`), between the samples around them:
        exactly the window when both are times `mark()` returned."""
        times = [at for at, _ in self._samples]
        first = max(0, bisect.bisect_right(times, start) - 1)
        last = min(len(times) - 1, bisect.bisect_left(times, end))
        (t0, a), (t1, b) = self._samples[first], self._samples[last]
        return Split(
            t1 - t0, b.busy - a.busy, b.clients - a.clients, b.postgres - a.postgres, b.broker - a.broker
        )
