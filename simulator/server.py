"""The simulator: routes, auth, timing, fault injection and the record of what it served."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from shadowlab.headers import CAPTURE_ID_HEADER
from simulator import anthropic_api
from simulator.answers import Answer, CacheStore, answer_key, plan_answer
from simulator.http import MAX_HEADER_BYTES, HttpRequest, Responder, serve_connection
from simulator.judge import JudgeProfile, QualityMemory, is_judge_model, judge_answer
from simulator.outages import OUTAGE_PATH, Holds, Outages
from simulator.profiles import FAULTS, Fault, ModelProfile, ProfileSet
from simulator.requests import InvalidRequestError, RequestView
from simulator.routes import Api, Route, route_of, route_of_api
from simulator.wire import StreamPlan

__all__ = [
    "HEADER_ARM",
    "HEADER_CAPTURE_ID",
    "HEADER_FAULT",
    "HEADER_INJECTED_TTFB",
    "HEADER_INJECTED_TTFT",
    "HEADER_QUALITY",
    "HEADER_RETRY_AFTER",
    "HEADER_STALL_MS",
    "HEADER_TTFB_MS",
    "HEADER_TTFT_MS",
    "SimRecord",
    "Simulator",
]

# Request headers (all optional): steer one request.
HEADER_FAULT = "x-sim-fault"  # one of profiles.FAULTS
HEADER_TTFB_MS = "x-sim-ttfb-ms"  # delay to the response head / message_start
HEADER_TTFT_MS = "x-sim-ttft-ms"  # delay to the first text/thinking delta
HEADER_ARM = "x-sim-arm"  # arm name: part of what determines the answer
HEADER_CAPTURE_ID = CAPTURE_ID_HEADER  # the replayed capture (the replayer sends it): fresh draws per capture
HEADER_RETRY_AFTER = "x-sim-retry-after"  # seconds, for rate_limit
HEADER_STALL_MS = "x-sim-stall-ms"  # length of a stall
# Response headers: what the simulator did.
HEADER_INJECTED_TTFB = "x-sim-injected-ttfb-ms"
HEADER_INJECTED_TTFT = "x-sim-injected-ttft-ms"
HEADER_QUALITY = "x-sim-quality"
_RECORDS_KEPT = 10_000


@dataclass(frozen=True)
class SimRecord:
    """What the simulator answered to one request (the `request-id` / `x-request-id` response header)."""

    request_id: str
    api: Api
    model: str
    arm: str
    stream: bool
    fault: Fault | None
    status: int
    injected_ttfb_ms: float
    injected_ttft_ms: float
    answer: Answer | None
    capture_id: str | None = None  # the replayed capture, when the caller named it
    arrived_at: float = 0.0  # wall clock (time.time()) when the request was read: what a provider counts
    retry_after_s: float | None = None  # the `retry-after` sent with a 429

    @property
    def answered_at(self) -> float:
        """When the response head (or the error) went out."""
        return self.arrived_at + self.injected_ttfb_ms / 1000

    @property
    def usage(self) -> dict[str, Any]:
        """The usage object as this API reports it."""
        if self.answer is None:
            return {}
        return route_of_api(self.api).usage_of(self.answer)


def _float_header(request: HttpRequest, name: str) -> float | None:
    raw = request.headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class Simulator:
    """Serves the Anthropic Messages API, OpenAI chat completions and the OpenAI Responses API (routes in
    `routes.py`); run it with `start()` in a loop."""

    def __init__(self, profiles: ProfileSet | None = None, seed: int = 0, api_key: str | None = None) -> None:
        self.profiles = profiles or ProfileSet()
        self.seed = seed
        self._api_key = api_key
        self._rng = random.Random(seed)  # timing and fault draws: a sequence, so retries can succeed
        self._cache = CacheStore()
        self._counter = itertools.count(1)
        self._records: OrderedDict[str, SimRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.judge = JudgeProfile()  # judge mode (models named sim-judge*): see judge.py
        self.qualities = QualityMemory()
        self.outages = Outages()  # models taken down on request (tests, `POST /sim/outage`)
        self.holds = Holds()  # models whose requests wait until released (tests)

    # --- lifecycle -------------------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=MAX_HEADER_BYTES, backlog=2048
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await serve_connection(reader, writer, self.handle)
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio's stream callback would log a cancelled handler as an error)
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    # --- records ---------------------------------------------------------------------------------------
    def records(self) -> tuple[SimRecord, ...]:
        with self._lock:
            return tuple(self._records.values())

    def record(self, request_id: str) -> SimRecord:
        with self._lock:
            return self._records[request_id]

    def _keep(self, record: SimRecord) -> None:
        with self._lock:
            self._records[record.request_id] = record
            while len(self._records) > _RECORDS_KEPT:
                self._records.popitem(last=False)

    # --- requests --------------------------------------------------------------------------------------
    async def handle(self, request: HttpRequest, out: Responder) -> None:
        loop = asyncio.get_running_loop()
        started, arrived_at = loop.time(), time.time()
        request_id = f"req_sim_{next(self._counter):08d}"
        path = request.path.rstrip("/")
        if request.method == "GET" and path == "/health":
            await out.send_json(200, {"status": "ok"}, {})
            return
        if path == OUTAGE_PATH and request.method in ("POST", "DELETE") and self._authorised(request):
            await self.outages.handle(request, out)
            return
        route = route_of(path)
        id_header = {"request-id" if route is None else route.id_header: request_id}
        if route is None or request.method != "POST":
            body = anthropic_api.error_body(
                "not_found_error", f"{request.method} {request.path}: not found", request_id
            )
            await out.send_json(404, body, id_header)
            return
        api = route.api
        if not self._authorised(request):
            body = route.error_body(
                "authentication_error", "x-api-key or Authorization: Bearer: expected a valid key", request_id
            )
            await out.send_json(401, body, id_header)
            return
        try:
            payload = request.json()
            view = route.view(payload)
        except (ValueError, InvalidRequestError) as exc:
            message = str(exc) if isinstance(exc, InvalidRequestError) else f"body: expected JSON ({exc})"
            await out.send_json(
                400, route.error_body("invalid_request_error", message, request_id), id_header
            )
            return
        await self.holds.wait(view.model)
        profile = self.profiles.for_model(view.model)
        arm = request.headers.get(HEADER_ARM, "")
        capture_id = request.headers.get(HEADER_CAPTURE_ID)
        # timing: drawn for the capture when it is named (reproducible per replay), else from the sequence
        timing = (
            self._rng
            if capture_id is None
            else random.Random(answer_key(self.seed, arm, api, payload, capture_id) + b"timing")
        )
        ttfb = _float_header(request, HEADER_TTFB_MS)
        ttfb = profile.ttfb_ms.sample(timing) if ttfb is None else ttfb
        ttft = _float_header(request, HEADER_TTFT_MS)
        ttft = max(profile.ttft_ms.sample(timing) if ttft is None else ttft, ttfb)
        wanted = request.headers.get(HEADER_FAULT)
        # faults stay a sequence whatever the capture, so a retry of the same capture can succeed
        fault: Fault | None = self.outages.of(view.model) or next((f for f in FAULTS if f == wanted), None)
        fault = fault or profile.faults.draw(self._rng)
        stream = payload.get("stream") is True
        if is_judge_model(view.model) and api != "responses":  # judges are asked through Messages or chat
            answer = judge_answer(
                payload,
                headers=request.headers,
                profile=self.judge,
                memory=self.qualities,
                key=answer_key(self.seed, arm, api, payload),  # a verdict depends on the judge request only
                input_tokens=view.input_tokens,
            )
        else:
            key = answer_key(self.seed, arm, api, payload, None if profile.repeat_identical else capture_id)
            answer = plan_answer(view, profile, key, self._cache)
            self.qualities.remember(answer)
        headers = {
            **id_header,
            HEADER_INJECTED_TTFB: f"{ttfb:.3f}",
            HEADER_INJECTED_TTFT: f"{ttft:.3f}",
            HEADER_QUALITY: f"{answer.quality:.4f}",
        }
        if fault:
            headers[HEADER_FAULT] = fault
        status = _status(route, fault, stream)
        self._keep(
            SimRecord(
                request_id,
                api,
                view.model,
                arm,
                stream,
                fault,
                status,
                ttfb,
                ttft,
                answer if status == 200 else None,
                capture_id,
                arrived_at,
                _retry_after(request, profile) if fault == "rate_limit" else None,
            )
        )
        await _sleep_until(started + ttfb / 1000)
        if fault in ("rate_limit", "overloaded", "server_error", "bad_request") or (
            fault == "stream_error" and not stream
        ):
            await self._send_error(out, route, fault, headers, request, profile, request_id)
        elif fault == "reset":
            out.reset()
        elif not stream:
            await self._send_whole(out, route, answer, view, profile, headers, started + ttft / 1000, fault)
        else:
            plan = route.stream_plan(answer, view, profile.chunk_tokens, payload)
            await self._send_stream(out, plan, headers, started + ttft / 1000, profile, fault, request)

    def _authorised(self, request: HttpRequest) -> bool:
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if key is None and bearer[:7].lower() == "bearer ":
            key = bearer[7:].strip()
        return bool(key) and (self._api_key is None or key == self._api_key)

    async def _send_error(
        self,
        out: Responder,
        route: Route,
        fault: Fault,
        headers: dict[str, str],
        request: HttpRequest,
        profile: ModelProfile,
        request_id: str,
    ) -> None:
        status, kind, message = route.errors[fault]
        if fault == "rate_limit":
            retry_after = _float_header(request, HEADER_RETRY_AFTER)
            headers = {
                **headers,
                "retry-after": f"{profile.retry_after_s if retry_after is None else retry_after:g}",
            }
        await out.send_json(status, route.error_body(kind, message, request_id), headers)

    async def _send_whole(
        self,
        out: Responder,
        route: Route,
        answer: Answer,
        view: RequestView,
        profile: ModelProfile,
        headers: dict[str, str],
        first_at: float,
        fault: Fault | None,
    ) -> None:
        if fault == "stall":
            await out.hold(profile.stall_ms / 1000)
            return
        await _sleep_until(first_at + answer.output_tokens / profile.tokens_per_s)
        await out.send_json(200, route.whole_body(answer, view), headers)

    async def _send_stream(
        self,
        out: Responder,
        plan: StreamPlan,
        headers: dict[str, str],
        first_at: float,
        profile: ModelProfile,
        fault: Fault | None,
        request: HttpRequest,
    ) -> None:
        sse = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", **headers}
        await out.start_stream(200, sse, plan.start)
        cut = max(1, len(plan.deltas) // 2) if fault in ("stream_error", "stall") else -1
        due = first_at
        for index, (data, tokens) in enumerate(plan.deltas):
            await _sleep_until(due)
            if index == cut:
                await self._break_stream(out, plan, fault, profile, request)
                return
            await out.send_chunk(data)
            due += tokens / profile.tokens_per_s
        if cut >= 0:  # too short to cut in the middle: break it at the end
            await self._break_stream(out, plan, fault, profile, request)
            return
        await _sleep_until(due)
        await out.send_chunk(plan.end)
        await out.end_stream()

    async def _break_stream(
        self,
        out: Responder,
        plan: StreamPlan,
        fault: Fault | None,
        profile: ModelProfile,
        request: HttpRequest,
    ) -> None:
        if fault == "stream_error":
            await out.send_chunk(plan.error_event)
            await out.end_stream()
            return
        stall = _float_header(request, HEADER_STALL_MS)
        await out.hold((profile.stall_ms if stall is None else stall) / 1000)


def _status(route: Route, fault: Fault | None, stream: bool) -> int:
    """The HTTP status a fault gives (0: no response at all)."""
    if fault is None or (stream and fault in ("stream_error", "stall")):
        return 200
    if fault in ("reset", "stall"):
        return 0
    return route.errors[fault][0]


def _retry_after(request: HttpRequest, profile: ModelProfile) -> float:
    """The `retry-after` a 429 carries: the request's `x-sim-retry-after`, else the profile's."""
    retry_after = _float_header(request, HEADER_RETRY_AFTER)
    return profile.retry_after_s if retry_after is None else retry_after


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)
