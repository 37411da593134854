"""Provider outages on cue: every request to some models fails (a dropped connection or a 500) until ended;
and holds on cue: every request to some models waits, unanswered, until released.

A real condition for the replayer's outage handling (docs/experiments.md), without stopping the server:
in process `Simulator.outages.start("gpt-4o*")`, over HTTP `POST /sim/outage {"models": "gpt-4o*",
"fault": "reset"}` (the API key as for the APIs) and `DELETE /sim/outage` to end every outage.

A hold (in process only, `Simulator.holds.start("sim-judge*")`) lets a test know that calls are in flight
without guessing how long they take: `holds.waiting()` counts the requests held, `holds.end()` lets them
all go on.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading
from typing import Literal, get_args

from simulator.http import HttpRequest, Responder

__all__ = ["OUTAGE_PATH", "Holds", "OutageFault", "Outages"]

OUTAGE_PATH = "/sim/outage"
OutageFault = Literal["reset", "server_error"]  # a dropped connection, or a 500 to every request


class Outages:
    """Which models are down and how they fail; shared by the server's loop and the caller's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[str, OutageFault] = {}  # model glob → what every request to it gets

    def start(self, models: str, fault: OutageFault = "reset") -> None:
        """Every request to a model matching `models` (a glob) fails with `fault` until `end`."""
        with self._lock:
            self._down[models] = fault

    def end(self, models: str | None = None) -> None:
        """End the outage of `models` (None: every outage)."""
        with self._lock:
            if models is None:
                self._down.clear()
            else:
                self._down.pop(models, None)

    def of(self, model: str) -> OutageFault | None:
        """How a request to `model` fails now (None: it does not)."""
        with self._lock:
            return next((f for glob, f in self._down.items() if fnmatch.fnmatchcase(model, glob)), None)

    async def handle(self, request: HttpRequest, out: Responder) -> None:
        """`POST /sim/outage {"models": glob, "fault": "reset"|"server_error"}`; `DELETE` ends them all."""
        if request.method == "DELETE":
            self.end()
        else:
            try:
                payload = request.json()
                models, fault = payload["models"], payload.get("fault", "reset")
                if not isinstance(models, str) or fault not in get_args(OutageFault):
                    raise ValueError(f"expected models (a glob) and fault in {get_args(OutageFault)}")
            except (ValueError, KeyError, TypeError) as exc:
                await out.send_json(400, {"error": f"{OUTAGE_PATH}: {exc}"}, {})
                return
            self.start(models, fault)
        with self._lock:
            down = dict(self._down)
        await out.send_json(200, {"outages": down}, {})


class Holds:
    """Models whose requests wait until released; shared by the server's loop and the caller's thread."""

    POLL_S = 0.005  # how often a held request looks whether it was released

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()  # model globs
        self._waiting = 0

    def start(self, models: str) -> None:
        """Requests to a model matching `models` (a glob) wait from now until `end`."""
        with self._lock:
            self._held.add(models)

    def end(self) -> None:
        """Let every held request go on (and hold nothing more)."""
        with self._lock:
            self._held.clear()

    def waiting(self) -> int:
        """How many requests are held now."""
        with self._lock:
            return self._waiting

    def _holds(self, model: str) -> bool:
        with self._lock:
            return any(fnmatch.fnmatchcase(model, glob) for glob in self._held)

    async def wait(self, model: str) -> None:
        """Return at once unless `model` is held; then when it is released."""
        if not self._holds(model):
            return
        with self._lock:
            self._waiting += 1
        try:
            while self._holds(model):
                await asyncio.sleep(self.POLL_S)
        finally:
            with self._lock:
                self._waiting -= 1
