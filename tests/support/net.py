"""Networking for tests that start servers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CountingProxy:
    """A TCP forwarder on 127.0.0.1 to `upstream` (host, port) that counts the connections it accepts: the
    number of times a client tried to connect to the server behind it. A context manager (`.port` to use):
    leaving it ends the connections it forwards and joins its threads (`threads` names them)."""

    NAME = "counting-proxy"  # every thread of it: its name, or its name and "-" and the thread's job
    JOIN_S = 10.0  # leaving waits at most this long for its threads; a thread still alive then fails it

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.accepted = upstream, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._closing = False
        self._sockets: list[socket.socket] = []  # every forwarded connection's two ends
        self.threads = [threading.Thread(target=self._serve, name=self.NAME, daemon=True)]

    def __enter__(self) -> CountingProxy:
        self.threads[0].start()
        return self

    def __exit__(self, failed: type[BaseException] | None, *_: object) -> None:
        with suppress(OSError):  # wakes the accept() under way (close alone leaves it blocked on Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self.threads[0].join(self.JOIN_S)  # no connection is accepted after this: `threads` is complete
        with self._lock:
            self._closing = True
            for end in self._sockets:
                _end(end)
        deadline = time.monotonic() + self.JOIN_S
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self.threads if thread.is_alive()]
        if alive and failed is None:
            raise AssertionError(f"{self.NAME}: threads still alive {self.JOIN_S:g} s after leaving: {alive}")

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._start(self._forward, client, job="forward")

    def _start(self, target: Callable[..., None], *args: object, job: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=f"{self.NAME}-{job}", daemon=True)
        self.threads.append(thread)
        thread.start()
        return thread

    def _forward(self, client: socket.socket) -> None:
        self._track(client)
        try:
            server = socket.create_connection(self.upstream)
        except OSError:  # nothing listens upstream: the client sees its connection end
            client.close()
            return
        self._track(server)
        with client, server:
            back = self._start(_pump, server, client, job="pump")
            _pump(client, server)
            back.join()  # ends: leaving the proxy ends both sockets if the peers do not

    def _track(self, end: socket.socket) -> None:
        """Let leaving end `end`; or end it now, if leaving has begun."""
        with self._lock:
            self._sockets.append(end)
            if self._closing:
                _end(end)


def _end(end: socket.socket) -> None:
    """End both directions of a connection: its pump's recv() returns."""
    with suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until `source` ends, then end `sink`'s direction too."""
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
