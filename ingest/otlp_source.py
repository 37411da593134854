"""OpenTelemetry GenAI spans as an ingest source: an OTLP JSON file, or an OTLP/HTTP receiver on a port.

Each span is converted by `shadowlab.otlp` into a capture message that goes down the same pipeline and store
path as a Kafka capture (validated, redacted, `ON CONFLICT (request_id) DO NOTHING`); a GenAI chat span
that cannot be a capture (no prompt content, no model...) is a message already rejected, dead-lettered with
its machine code; spans that are not GenAI chat calls are counted as skipped (`not_genai_chat`).

The receiver answers an export only once its spans are stored or dead-lettered (the runner committed them):
until then the exporter waits, and a 503 (ingest stopping, too far behind, or slower than `answer_within_s`)
makes it send the export again, which stores nothing twice. So the receiver is at-least-once, like Kafka.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingest.messages import Message
from ingest.metrics import IngestMetrics
from ingest.sources import ReadOnce
from shadowlab.errors import ConfigError
from shadowlab.otlp import SpanOutcome, read_otlp_documents, span_outcomes

log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
DEFAULT_PORT = 4318  # OTLP/HTTP's registered port
# The OpenTelemetry Collector's own OTLP receiver refuses bodies above 20 MiB by default.
MAX_BODY_BYTES = 20 * 1024 * 1024
NOT_GENAI = "not_genai_chat"


def message_of(outcome: SpanOutcome, offset: int, where: str) -> Message | None:
    """The ingest message of one span: its capture, or the span itself already rejected; None if ignored."""
    origin = f"{where} span {outcome.where}"
    if outcome.capture is not None:
        key = str(outcome.capture["request_id"]).encode()
        value = json.dumps(outcome.capture, ensure_ascii=False).encode()
        return Message(value, key, None, None, offset, origin)
    if outcome.rejected is not None:
        rejection = (outcome.rejected.code, outcome.rejected.reason)
        return Message(json.dumps(outcome.raw).encode(), None, None, None, offset, origin, rejection)
    return None


class OtlpFileSource(ReadOnce):
    """The spans of an OTLP JSON file (one export, or one per line as the Collector's file exporter writes);
    a span's offset is its number in the file."""

    def __init__(self, path: Path, metrics: IngestMetrics, stop: threading.Event) -> None:
        try:
            documents = list(read_otlp_documents(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"INPUT: cannot read the OTLP file {path} ({exc.strerror})") from None
        except ValueError as exc:  # OtlpFormatError, a line that is not JSON, or not UTF-8
            raise ConfigError(f"INPUT: OTLP file {path}: {exc}") from None
        super().__init__(stop)
        self._outcomes: Iterator[SpanOutcome] = span_outcomes(documents)
        self._metrics, self._where = metrics, path.name
        self._count = 0

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        out: list[Message] = []
        ignored = 0
        for outcome in self._outcomes:
            self._count += 1
            message = message_of(outcome, self._count, self._where)
            if message is None:
                ignored += 1
                continue
            out.append(message)
            if len(out) >= max_records:
                break
        else:
            self.exhausted = True
        _count_ignored(self._metrics, ignored)
        return out


def _count_ignored(metrics: IngestMetrics, ignored: int) -> None:
    if ignored:
        metrics.consumed(ignored)
        metrics.skipped(NOT_GENAI, ignored)


class _Export:
    """One received export: done once each of its messages is committed, or abandoned (ingest stops)."""

    def __init__(self, messages: int, rejected: int) -> None:
        self.left, self.rejected = messages, rejected
        self.abandoned = False
        self.done = threading.Event()
        if messages == 0:
            self.done.set()


class OtlpReceiver:
    """`POST /v1/traces` with an OTLP/HTTP JSON body (gzip or not); `port=0` picks a free port (`.port`)."""

    exhausted = False
    ready = True

    def __init__(
        self,
        host: str,
        port: int,
        metrics: IngestMetrics,
        stop: threading.Event,
        *,
        max_pending: int = 10_000,
        answer_within_s: float = 20.0,  # below the exporters' own timeouts (the Collector's: 30 s)
    ) -> None:
        self._metrics, self._stop = metrics, stop
        self.max_pending, self.answer_within_s = max_pending, answer_within_s
        self._lock = threading.Condition()
        self._pending: deque[Message] = deque()
        self._exports: dict[int, _Export] = {}  # by message offset, until committed
        self._offset = 0
        self._ignored = 0
        self._closed = False
        try:
            self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            raise ConfigError(
                f"--otlp-port {port}: cannot listen on {host}:{port} ({exc.strerror})"
            ) from None
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.1,), name="otlp-receiver", daemon=True
        )  # polls for shutdown every 0.1 s: `close` returns that fast
        self._thread.start()
        log.info("OTLP/HTTP receiver on http://%s:%d%s", host, self.port, TRACES_PATH)

    def receive(self, outcomes: Iterable[SpanOutcome]) -> _Export | None:
        """Queue an export's spans for the runner; None when ingest is stopping or too far behind."""
        with self._lock:
            if self._closed or len(self._pending) >= self.max_pending:
                return None
            messages: list[Message] = []
            ignored = rejected = 0
            for outcome in outcomes:
                self._offset += 1
                message = message_of(outcome, self._offset, "otlp")
                if message is None:
                    ignored += 1
                    continue
                rejected += message.rejection is not None
                messages.append(message)
            export = _Export(len(messages), rejected)
            self._exports.update((m.offset, export) for m in messages)
            self._pending.extend(messages)
            self._ignored += ignored
            self._lock.notify_all()
        return export

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        with self._lock:
            if not self._pending:
                self._lock.wait(timeout_s)
            out = [self._pending.popleft() for _ in range(min(max_records, len(self._pending)))]
            ignored, self._ignored = self._ignored, 0
        _count_ignored(self._metrics, ignored)  # here, on the runner's thread, like every other count
        return out

    def commit(self, messages: Sequence[Message]) -> None:
        with self._lock:
            for message in messages:
                export = self._exports.pop(message.offset, None)
                if export is not None:
                    export.left -= 1
                    if export.left == 0:
                        export.done.set()

    def pause(self) -> None:
        return None  # the queue is bounded: exports beyond `max_pending` are answered 503

    def keep_alive(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def resume(self) -> None:
        return None

    def caught_up(self) -> bool:
        with self._lock:
            return not self._pending and not self._exports

    def close(self) -> None:
        """Stop listening; exports not yet stored are answered 503, so their exporters send them again."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            self._closed = True
            for export in self._exports.values():
                export.abandoned = True
                export.done.set()
            self._exports.clear()
            self._pending.clear()


def _handler_for(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            try:
                status, body = self._answer()
            except _Refused as refused:
                status, body = refused.status, {"code": refused.status, "message": refused.message}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(payload)

        def _answer(self) -> tuple[int, dict[str, Any]]:
            if self.path.partition("?")[0] != TRACES_PATH:
                raise _Refused(HTTPStatus.NOT_FOUND, f"expected POST {TRACES_PATH}, found {self.path}")
            document = _document_of(self._body())
            export = receiver.receive(span_outcomes([document]))
            if export is None:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "ingest is stopping or behind: send again")
            if not export.done.wait(receiver.answer_within_s) or export.abandoned:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "spans not stored yet: send again")
            if not export.rejected:
                return HTTPStatus.OK, {}
            reason = "spans that cannot be captures went to the dead letters with their reason"
            return HTTPStatus.OK, {
                "partialSuccess": {"rejectedSpans": export.rejected, "errorMessage": reason}
            }

        def _body(self) -> bytes:
            kind = self.headers.get("Content-Type", "").partition(";")[0].strip().lower()
            if kind != "application/json":
                raise _Refused(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"expected Content-Type application/json (OTLP/HTTP JSON), found {kind or 'none'}: "
                    "set the exporter's encoding to json (Collector otlphttp: encoding: json)",
                )
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above {MAX_BODY_BYTES} bytes")
            raw = self.rfile.read(length)
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding == "gzip":
                return _gunzip(raw)
            if encoding != "identity":
                raise _Refused(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"expected gzip or no encoding, found {encoding}"
                )
            return raw

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("otlp receiver: " + format, *args)

    return Handler


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _gunzip(raw: bytes) -> bytes:
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflate.decompress(raw, MAX_BODY_BYTES + 1)
    except zlib.error as exc:
        raise _Refused(HTTPStatus.BAD_REQUEST, f"body is not valid gzip: {exc}") from None
    if len(body) > MAX_BODY_BYTES:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above {MAX_BODY_BYTES} bytes unpacked")
    return body


def _document_of(body: bytes) -> Any:
    try:
        (document,) = read_otlp_documents(body.decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, not an export, or several lines of exports
        raise _Refused(HTTPStatus.BAD_REQUEST, f"not an OTLP JSON trace export: {exc}") from None
    return document
