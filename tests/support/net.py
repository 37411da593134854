"""Networking for tests that start servers."""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class CountingProxy:
    """A TCP forwarder on 127.0.0.1 to `upstream` (host, port) that counts the connections it accepts: the
    number of times a client tried to connect to the server behind it. A context manager (`.port` to use)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.accepted = upstream, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, name="counting-proxy", daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._listener.close()  # accept() fails: the loop ends
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._forward, args=(client,), daemon=True).start()

    def _forward(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.upstream) as server:
            back = threading.Thread(target=_pump, args=(server, client), daemon=True)
            back.start()
            _pump(client, server)
            back.join(timeout=30)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy bytes until `source` ends, then end `sink`'s direction too."""
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
