"""Sinks without Kafka: a rotating JSONL file writer, and an in-memory sink for tests."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shadowlab_tee.record import TeeConfigError
from shadowlab_tee.sink import Sink


class JsonlSink(Sink):
    """Appends one capture per line to `path`, rotating to `path.1` … `path.N` past `max_bytes`.

    `{pid}` in the path is replaced by the process id, so forked workers each write their own file
    (rotation is not coordinated between processes sharing one file). Writes are unbuffered, one
    `write` per batch, so a fork never duplicates buffered lines.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        queue_size: int = 10_000,
    ) -> None:
        if max_bytes < 1 or backups < 0:
            raise TeeConfigError(
                f"JsonlSink needs max_bytes >= 1 and backups >= 0, got {max_bytes}, {backups}"
            )
        self._template = str(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._fd: int | None = None
        self._size = 0
        super().__init__(queue_size=queue_size, name="jsonl")

    @property
    def path(self) -> Path:
        """The file this process writes to now."""
        return Path(self._template.replace("{pid}", str(os.getpid())))

    def _open(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def _write_batch(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        done = 0
        try:
            chunk: list[bytes] = []
            chunk_size = 0
            for _, value in records:
                line_size = len(value) + 1
                if self._size + chunk_size + line_size > self._max_bytes and self._size + chunk_size > 0:
                    done += self._write(chunk, chunk_size)
                    chunk, chunk_size = [], 0
                    self._rotate()
                chunk.append(value + b"\n")
                chunk_size += line_size
            done += self._write(chunk, chunk_size)
        except OSError as exc:
            self._settle(failed=len(records) - done, error=f"write {self.path}: {exc}")

    def _write(self, lines: list[bytes], size: int) -> int:
        if not lines:
            return 0
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(b"".join(lines))
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += size
        self._settle(sent=len(lines))
        return len(lines)

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        path = self.path
        if self._backups == 0:
            path.unlink(missing_ok=True)
        else:
            for index in range(self._backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{index}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{index + 1}"))
            path.replace(path.with_name(f"{path.name}.1"))
        self._open()

    def _close_resource(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _abandon_after_fork(self) -> None:
        # The descriptor belongs to the parent's file; the child reopens its own path lazily.
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._size = 0


class MemorySink(Sink):
    """Keeps encoded captures in memory (tests and local debugging)."""

    def __init__(self, *, queue_size: int = 10_000) -> None:
        self._records: list[tuple[bytes, bytes]] = []
        self._records_lock = threading.Lock()
        super().__init__(queue_size=queue_size, name="memory")

    def records(self) -> list[tuple[bytes, bytes]]:
        """(key, value) pairs delivered so far, in delivery order."""
        with self._records_lock:
            return list(self._records)

    def captures(self) -> list[dict[str, Any]]:
        """Delivered captures, decoded from JSON."""
        return [json.loads(value) for _, value in self.records()]

    def _open(self) -> None:
        return None

    def _write_batch(self, records: Sequence[tuple[bytes, bytes]]) -> None:
        with self._records_lock:
            self._records.extend(records)
        self._settle(sent=len(records))

    def _close_resource(self) -> None:
        return None

    def _abandon_after_fork(self) -> None:
        self._records_lock = threading.Lock()
        self._records = []
