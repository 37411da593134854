"""The tests' TCP proxy (`tests.support.net.CountingProxy`) leaves no thread behind its `with` block, even
with a connection it forwards still open at both ends: a thread left serving would outlive the test."""

from __future__ import annotations

import socket
import threading

from tests.support.net import CountingProxy


def test_the_proxy_ends_its_connections_and_threads_when_left() -> None:
    before = set(threading.enumerate())
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        with CountingProxy(upstream.getsockname()[:2]) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            server, _ = upstream.accept()
            server.settimeout(10)
            client.sendall(b"ping")  # both directions forwarded: the proxy's accept, forward and pump threads
            assert server.recv(4, socket.MSG_WAITALL) == b"ping"
            server.sendall(b"pong")
            assert client.recv(4, socket.MSG_WAITALL) == b"pong"
            assert {thread.name for thread in proxy.threads if thread.is_alive()} == {
                "counting-proxy",
                "counting-proxy-forward",
                "counting-proxy-pump",
            }
        with client, server:  # still open here: the proxy ended its side of both
            assert client.recv(1) == b"" and server.recv(1) == b""
    left = [t.name for t in set(threading.enumerate()) - before if t.name.startswith(CountingProxy.NAME)]
    assert left == [] and proxy.accepted == 1, left
