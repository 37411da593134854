"""Shared by the tests of a database that cannot be used: its error as the check raises it, a command's one
`error:` line, and a socket that answers libpq's login as a Postgres server would."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from shadowlab.db import check_connection, create_engine
from shadowlab.errors import ShadowlabError

CliRunner = Callable[..., subprocess.CompletedProcess[str]]
PASSWORD = "h3-not-the-password"  # a password the tests give where it is wrong: never in a message


def checked(url: str) -> ShadowlabError:
    """The error `check_connection` raises on `url` (the test fails if it passes)."""
    engine = create_engine(url, connect_timeout_s=2)
    try:
        with pytest.raises(ShadowlabError) as raised:
            check_connection(engine)
    finally:
        engine.dispose()
    return raised.value


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """A command's stderr that is one `error:` line, with exit `code`, no traceback and no `PASSWORD`."""
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    return result.stderr


@contextmanager
def answering_once(answer: bytes, *, password_read: bool) -> Iterator[str]:
    """The URL of a socket that answers libpq's startup packet with `answer` (Postgres' protocol), then, when
    `password_read`, reads the password it asked for and ends the connection without a word; one connect."""

    def answer_once() -> None:
        client, _ = server.accept()
        with client:
            size = int.from_bytes(client.recv(4, socket.MSG_WAITALL), "big")
            client.recv(size - 4, socket.MSG_WAITALL)  # the startup packet: protocol, user, database
            client.sendall(answer)
            if password_read:  # 'p', its length, the password
                size = int.from_bytes(client.recv(5, socket.MSG_WAITALL)[1:], "big")
                client.recv(size - 4, socket.MSG_WAITALL)

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        answering = threading.Thread(target=answer_once, daemon=True)
        answering.start()
        url = f"postgresql+psycopg://shadowlab:{PASSWORD}@127.0.0.1:{port}/shadowlab"
        yield f"{url}?sslmode=disable&gssencmode=disable"
        answering.join()


def message(kind: bytes, body: bytes) -> bytes:
    """A message of Postgres' protocol: its kind, length and body."""
    return kind + (len(body) + 4).to_bytes(4, "big") + body


def refusal(sqlstate: str, said: str) -> bytes:
    """The server's FATAL ErrorResponse to a login, as Postgres sends it."""
    fields = b"".join(k + v.encode() + b"\0" for k, v in ((b"S", "FATAL"), (b"C", sqlstate), (b"M", said)))
    return message(b"E", fields + b"\0")
