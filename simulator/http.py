"""A minimal HTTP/1.1 server on asyncio streams: keep-alive, Content-Length bodies, chunked responses.

Enough for httpx (which both SDKs use) and fast: no framework, one coroutine per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["HttpRequest", "Responder", "serve_connection"]

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024


class _BadRequest(Exception):
    pass


@dataclass(frozen=True)
class HttpRequest:
    """One parsed request; header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else "Status"


class Responder:
    """Writes one response: whole (`send`) or chunked (`start_stream`, `send_chunk`, `end_stream`)."""

    def __init__(
        self, writer: asyncio.StreamWriter, keep_alive: bool, reader: asyncio.StreamReader | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        self.keep_alive = keep_alive
        self.started = False

    def _head(self, status: int, headers: Mapping[str, str], extra: str) -> bytes:
        lines = [f"HTTP/1.1 {status} {_reason(status)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(extra)
        lines.append("connection: keep-alive" if self.keep_alive else "connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.started = True
        self._writer.write(self._head(status, headers, f"content-length: {len(body)}") + body)
        await self._writer.drain()

    async def send_json(self, status: int, payload: Any, headers: Mapping[str, str]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        await self.send(status, body, {"content-type": "application/json", **headers})

    async def start_stream(self, status: int, headers: Mapping[str, str], first: bytes = b"") -> None:
        """Send the head (and optionally the first chunk in the same write, so they arrive together)."""
        self.started = True
        head = self._head(status, headers, "transfer-encoding: chunked")
        self._writer.write(head + (_chunk(first) if first else b""))
        await self._writer.drain()

    async def send_chunk(self, data: bytes) -> None:
        if data:
            self._writer.write(_chunk(data))
            await self._writer.drain()

    async def end_stream(self) -> None:
        self._writer.write(b"0\r\n\r\n")
        await self._writer.drain()

    async def hold(self, longest_s: float) -> None:
        """Say nothing until the client gives up and closes the connection (or `longest_s` passes), then drop
        it: a stalled server holds the socket open for as long as the client waits."""
        if self._reader is not None:
            with contextlib.suppress(TimeoutError, ConnectionError):
                async with asyncio.timeout(longest_s):
                    while await self._reader.read(65536):
                        pass  # nothing the client sends can end a stall; only its close does
        else:
            await asyncio.sleep(longest_s)
        self.reset()

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed server or proxy would."""
        self.keep_alive = False
        sock = self._writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._writer.transport.abort()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise _BadRequest("incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(f"request head larger than {MAX_HEADER_BYTES} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(f"request line: expected 'METHOD PATH HTTP/1.x', found {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(f"header line: expected 'name: value', found {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
    if parts[2] == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise _BadRequest(f"content-length: expected at most {MAX_BODY_BYTES}, found {length!r}")
        body = await reader.readexactly(int(length))
    return HttpRequest(parts[0].upper(), parts[1].split("?", 1)[0], headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise _BadRequest(f"chunk size: expected hex, found {size_line[:20]!r}") from None
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY_BYTES:
            raise _BadRequest(f"body larger than {MAX_BODY_BYTES} bytes")


Handler = Callable[[HttpRequest, Responder], Awaitable[None]]


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    """Serve requests on one connection until the client closes it or a response ends it."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            try:
                request = await _read_request(reader)
            except _BadRequest as exc:
                responder = Responder(writer, keep_alive=False)
                await responder.send(400, str(exc).encode(), {"content-type": "text/plain"})
                break
            if request is None:
                break
            responder = Responder(writer, request.headers.get("connection", "").lower() != "close", reader)
            await handler(request, responder)
            if not responder.keep_alive or writer.transport.is_closing():
                break
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client went away; nothing to answer
    finally:
        if not writer.transport.is_closing():
            writer.close()
