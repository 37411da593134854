"""Provider outages on cue: every request to some models fails (a dropped connection or a 500) until ended.

A real condition for the replayer's outage handling (docs/experiments.md), without stopping the server:
in process `Simulator.outages.start("gpt-4o*")`, over HTTP `POST /sim/outage {"models": "gpt-4o*",
"fault": "reset"}` (the API key as for the APIs) and `DELETE /sim/outage` to end every outage.
"""

from __future__ import annotations

import fnmatch
import threading
from typing import Literal, get_args

from simulator.http import HttpRequest, Responder

__all__ = ["OUTAGE_PATH", "OutageFault", "Outages"]

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
