"""One replayer worker: an asyncio loop leasing requests and replaying every arm of each concurrently."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from replayer import leases
from replayer.arms import ArmRuntime, PreparedCall, prepare_call
from replayer.metrics import WorkerMetrics
from shadowlab import store
from shadowlab.budget import worst_case_usd
from shadowlab.config import Settings
from shadowlab.experiment import ExperimentSpec
from shadowlab.headers import CAPTURE_ID_HEADER
from shadowlab.limits import RateLimiter, RetryPolicy, call_with_retries
from shadowlab.models import utcnow
from shadowlab.pricing import PriceTable
from shadowlab.providers import Provider, ProviderResult, config_from_settings, create_provider

__all__ = ["Mode", "WorkerConfig", "run_worker"]

Mode = Literal["backfill", "live"]
_CLAIM_BATCH = 16


@dataclass(frozen=True)
class WorkerConfig:
    experiment: str
    worker_id: str
    mode: Mode
    concurrency: int = 64  # requests in flight in this process (each with all its arms)
    poll_s: float = 0.2


class Worker:
    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        config: WorkerConfig,
        metrics: WorkerMetrics,
    ) -> None:
        self.factory, self.config, self.metrics = factory, config, metrics
        with factory() as session:
            experiment = store.experiments.by_name(config.experiment, session=session)
            self.experiment_id = experiment.id
            self.spec: ExperimentSpec = store.experiments.spec_of(experiment)
            self.prices = PriceTable.from_json(experiment.price_snapshot, "experiment price snapshot")
            self.arms = tuple(ArmRuntime.of(arm) for arm in experiment.arms)
        rs = self.spec.replay
        overrides = {"stall_timeout_s": rs.stall_timeout_s, "timeout_s": rs.timeout_s}
        self.providers: dict[str, Provider] = {
            name: create_provider(name, config_from_settings(name, settings, **overrides))
            for name in {arm.provider for arm in self.arms}
        }
        self.limiter = RateLimiter(factory, self.spec.limits, max_call_s=rs.timeout_s)
        self.policy = RetryPolicy(rs.max_attempts, rs.backoff_base_s, rs.backoff_max_s)
        self.rng = random.Random()
        self.held: set[int] = set()
        self.stopping = asyncio.Event()

    def worst_case(self, api: str, body: dict[str, Any]) -> float:
        calls = [prepare_call(arm, api, body).arm_call(arm.model) for arm in self.arms]
        return worst_case_usd(calls, self.prices, self.spec.budget.judge_usd_per_request)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            while not self.stopping.is_set():
                free = self.config.concurrency - len(tasks)
                if free <= 0:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                got = await loop.run_in_executor(None, self._claim, min(free, _CLAIM_BATCH))
                for lease in got.leases:
                    self.held.add(lease.lease_id)
                    task = asyncio.create_task(self._replay_request(lease))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if got.leases:
                    continue
                if got.state in ("exhausted", "stopped"):
                    break
                if got.state == "empty" and self.config.mode == "backfill" and not tasks:
                    pending = await loop.run_in_executor(None, leases.pending_leases, self.factory,
                                                         self.experiment_id)  # fmt: skip
                    if pending == 0:
                        break
                await self._pause(tasks)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            for provider in self.providers.values():
                await provider.aclose()

    async def _pause(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for a slot to free or the poll interval, whichever comes first."""
        wait_for = [*tasks, asyncio.create_task(self.stopping.wait())]
        _, pending = await asyncio.wait(
            wait_for,
            timeout=self.config.poll_s * (0.5 + self.rng.random()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        wait_for[-1].cancel()

    def _claim(self, limit: int) -> leases.Claim:
        return leases.claim(
            self.factory, experiment_id=self.experiment_id, worker_id=self.config.worker_id,
            traffic=self.spec.traffic, lease_s=self.spec.replay.lease_s, limit=limit, cost_of=self.worst_case,
            judge_usd=self.spec.budget.judge_usd_per_request,
        )  # fmt: skip

    async def _heartbeat(self) -> None:
        loop = asyncio.get_running_loop()
        lease_s = self.spec.replay.lease_s
        while True:
            await asyncio.sleep(lease_s / 3)
            await loop.run_in_executor(
                None, leases.extend, self.factory, self.config.worker_id, tuple(self.held), lease_s
            )

    async def _replay_request(self, lease: leases.Lease) -> None:
        order = list(self.arms)
        self.rng.shuffle(order)  # random start order: drift and provider load hit all arms alike
        arm_tasks = [asyncio.create_task(self._replay_arm(arm, lease)) for arm in order]
        rows = await asyncio.gather(*arm_tasks)
        await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: leases.complete(
                self.factory, experiment_id=self.experiment_id, lease=lease, rows=rows,
                judge_usd=self.spec.budget.judge_usd_per_request,
            ),
        )  # fmt: skip
        self.held.discard(lease.lease_id)
        self.metrics.requests.inc()
        self.metrics.spend.inc(sum(row["cost_usd"] or 0.0 for row in rows))

    async def _replay_arm(self, arm: ArmRuntime, lease: leases.Lease) -> dict[str, Any]:
        started = utcnow()
        try:
            call = prepare_call(arm, lease.api, lease.body)
        except ValueError as exc:  # a stored body that no longer fits its API: recorded, not dropped
            return self._row(arm, lease, None, 0, started, error=("bad_request", f"capture: {exc}"))
        result, attempts = await call_with_retries(
            self.limiter, arm.limit_key, lambda: self._send(arm, call, lease.request_id),
            input_tokens=call.input_tokens_estimate, output_tokens=call.max_output_tokens,
            policy=self.policy, rng=self.rng,
            on_admit=lambda permit: self.metrics.limiter_wait.observe(permit.waited_s),
            on_retry=lambda failed: self.metrics.retries.labels(code=failed.error_code or "unknown").inc(),
        )  # fmt: skip
        return self._row(arm, lease, result, attempts, started, notes=call.notes)

    async def _send(self, arm: ArmRuntime, call: PreparedCall, capture_id: str) -> ProviderResult:
        provider = self.providers[arm.provider]
        headers: Mapping[str, str] = {**arm.extra_headers, CAPTURE_ID_HEADER: capture_id}
        if call.raw_body is not None:
            return await provider.complete_raw(call.raw_body, untranslated=call.notes, extra_headers=headers)
        assert call.request is not None
        return await provider.complete(call.request, model=arm.model, extra_headers=headers)

    def _row(
        self,
        arm: ArmRuntime,
        lease: leases.Lease,
        result: ProviderResult | None,
        attempts: int,
        started: Any,
        *,
        notes: tuple[str, ...] = (),
        error: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        usage = result.usage if result else None
        code, detail = error or ((result.error_code, result.error_detail) if result else (None, None))
        self.metrics.replays.labels(status="error" if code else "ok", code=code or "").inc()
        return {
            "experiment_id": self.experiment_id, "arm_id": arm.id,
            "captured_request_id": lease.captured_request_id,
            "status": "error" if code else "ok", "answer_text": result.text if result else None,
            "tool_calls": [c.__dict__ for c in result.tool_calls] if result else None,
            "stop_reason": result.stop_reason if result else None,
            "ttfb_ms": result.ttfb_ms if result else None, "ttft_ms": result.ttft_ms if result else None,
            "latency_ms": result.ttlt_ms if result else None,
            "input_tokens": usage.input_tokens if usage else 0,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens if usage else 0,
            "cache_read_input_tokens": usage.cache_read_input_tokens if usage else 0,
            "output_tokens": usage.output_tokens if usage else 0,
            "reasoning_tokens": (usage.reasoning_tokens or 0) if usage else 0,
            "cost_usd": self.prices.cost(arm.model, usage) if usage else 0.0,
            "error_code": code, "error_detail": detail,
            "untranslated": list(result.untranslated if result else notes),
            "attempts": max(attempts, 1), "started_at": started, "finished_at": utcnow(),
        }  # fmt: skip


async def run_worker(factory: sessionmaker[Session], settings: Settings, config: WorkerConfig,
                     metrics: WorkerMetrics) -> None:  # fmt: skip
    """Run one worker until its work is done (backfill), the experiment stops, or SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=16, thread_name_prefix="shadowlab-db"))
    worker = Worker(factory, settings, config, metrics)
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, worker.stopping.set)
    await worker.run()
