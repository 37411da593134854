"""`shadowlab demo`: the whole pipeline, each stage run as the command a user would run.

Embedded (default): synthetic traffic → `ingest --source file` → SQLite → `replay` against the
simulator → `score` → `analyze`. `--real`: the tee mirrors production calls into the real Kafka
broker, `ingest` consumes them into the real Postgres, and the rest runs the same way.
Stages are subprocesses of the `shadowlab` command, so the demo uses exactly the user's path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from analysis.routing_text import saving_sentence
from demo import setup
from demo.traffic import TrafficSpec, write_jsonl
from shadowlab.errors import ShadowlabError

Echo = Callable[[str], None]
EXPERIMENT = "sonnet-to-cheaper"
OUTPUTS = (
    "shadowlab.db", "shadowlab.db-wal", "shadowlab.db-shm", "captures.jsonl", "captures.jsonl.rejected.jsonl",
    "analysis.json", "report.html", "routing.yaml",
)  # fmt: skip


class DemoError(ShadowlabError):
    """A stage of the demo failed; the message names the stage and where its output is."""


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    seed: int = 1
    small: bool = False
    real: bool = False
    database_url: str | None = None  # --real: Postgres
    kafka_bootstrap: str | None = None  # --real

    @property
    def n_captures(self) -> int:
        return 240 if self.small else 1000


@dataclass
class DemoResult:
    verdict: str | None = None
    routes: dict[str, str] = field(default_factory=dict)
    routes_ok: bool = False
    expected_verdict: str = ""
    statuses: dict[str, str] = field(default_factory=dict)
    expected: dict[str, str] = field(default_factory=dict)
    analysis_file: Path | None = None
    checked: list[str] = field(default_factory=list)  # every comparison with the truth, as printed
    mismatches: list[str] = field(default_factory=list)

    @property
    def matches_truth(self) -> bool:
        return not self.mismatches and self.routes_ok


def truth_check(document: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Compare the analysis with the truth built into the simulator: the verdict and its recommendation,
    every candidate's status and the checks that decide it (the reasons), and every health check.

    Returns (what was checked, what disagreed): a verdict that is right for a wrong reason disagrees.
    """
    verdict = document.get("verdict") or {}
    checked: list[str] = []
    wrong: list[str] = []

    def expect(what: str, found: Any, wanted: Any) -> None:
        line = f"{what}: expected {wanted}, found {found}"
        checked.append(line)
        if found != wanted:
            wrong.append(line)

    expect("verdict", verdict.get("verdict"), setup.expected_verdict())
    expect("recommended arm", verdict.get("recommended"), setup.expected_recommendation())
    candidates = {str(c.get("arm")): c for c in verdict.get("candidates") or [] if isinstance(c, dict)}
    for arm in setup.CANDIDATES:
        found = candidates.get(arm.name) or {}
        expect(f"{arm.name} status", found.get("status"), setup.expected_status(arm))
        statuses = {str(k.get("name")): k.get("status") for k in found.get("checks") or []}
        for name, wanted in setup.expected_checks(arm).items():
            expect(f"{arm.name} {name}", statuses.get(name), wanted)
    for check in (document.get("health") or {}).get("checks") or []:
        # Every health check must pass; the A/A noise floor must have run (the demo has an A/A arm).
        expect(f"health {check.get('name')}", check.get("passed"), True)
    return checked, wrong


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DemoError(f"simulator exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet; bounded by the deadline
    raise DemoError(f"simulator did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


@contextmanager
def simulator(out: Path, seed: int) -> Iterator[str]:
    """`shadowlab simulate` in the background with the demo's profiles; yields its base URL."""
    profile = out / "profiles.yaml"
    profile.write_text(yaml.safe_dump(setup.profiles(), sort_keys=False))
    port = _free_port()
    log = (out / "simulator.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "simulate", "--port", str(port), "--profile", str(profile),
         "--seed", str(seed)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


class Stages:
    """Runs `shadowlab …` commands with the demo's environment, echoing each one."""

    def __init__(self, env: dict[str, str], echo: Echo, cwd: Path) -> None:
        self.env, self.echo, self.cwd = env, echo, cwd

    def run(self, *args: str, capture: bool = False) -> str:
        self.echo(f"$ shadowlab {' '.join(args)}")
        started = time.monotonic()
        proc, held = _start(
            [sys.executable, "-m", "shadowlab", *args], env=self.env, cwd=self.cwd, capture=capture
        )
        with proc:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a Ctrl-C held back while it started: here
                stdout, _ = proc.communicate()
            except BaseException:  # Ctrl-C: the stage heard it too (same process group) and stops on its own
                _stop(proc)
                raise
        if proc.returncode != 0:
            raise DemoError(f"`shadowlab {' '.join(args)}` failed with exit code {proc.returncode}")
        self.echo(f"  ({time.monotonic() - started:.1f} s)")
        return stdout or ""


def _start(
    command: list[str], *, env: dict[str, str], cwd: Path, capture: bool
) -> tuple[subprocess.Popen[str], set[int | signal.Signals]]:
    """A stage's process, started with Ctrl-C held back (the signal mask to restore is returned): a Ctrl-C
    between the stage's fork and its exec reached the child while it still had this process's handler, so the
    stage lost it and ran on (a whole replay, writing to this terminal) with nobody waiting for it. The child
    restores the mask before its exec (preexec_fn; the demo runs no thread of its own); a Ctrl-C that came
    meanwhile is passed on to the stage, which may have lost it."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        proc = subprocess.Popen(
            command, env=env, cwd=cwd, text=True, stdout=subprocess.PIPE if capture else None,
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, held),
        )  # fmt: skip
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    if signal.SIGINT in signal.sigpending():
        proc.send_signal(signal.SIGINT)
    return proc, held


def _stop(proc: subprocess.Popen[str], grace_s: float = 30.0) -> None:
    """Wait for a stage that was told to stop (a replay finishes or gives back what it holds; a provider
    gone meanwhile costs it at most its retries), killing it after `grace_s` or on a second Ctrl-C."""
    try:
        proc.wait(timeout=grace_s)
    except BaseException:
        proc.kill()
        raise


def _environment(options: DemoOptions, base_url: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWLAB_")}
    env |= {
        "SHADOWLAB_DATABASE_URL": database_url,
        "SHADOWLAB_ANTHROPIC_BASE_URL": base_url,
        "SHADOWLAB_OPENAI_BASE_URL": f"{base_url}/v1",
        "SHADOWLAB_PRICES_FILE": str(options.out.resolve() / "prices.json"),
        # The simulator accepts any key; real keys are never needed (nor read) by the demo.
        "ANTHROPIC_API_KEY": "sk-ant-demo-not-a-real-key",
        "OPENAI_API_KEY": "sk-demo-not-a-real-key",
    }
    if options.kafka_bootstrap:
        env["SHADOWLAB_KAFKA_BOOTSTRAP"] = options.kafka_bootstrap
    return env


def _prepare(out: Path) -> None:
    """A fresh output folder: a run interrupted earlier leaves nothing that changes this one."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)


def _statuses(document: dict[str, Any]) -> dict[str, str]:
    verdict = document.get("verdict") or {}
    per = verdict.get("candidates") or []
    return {str(c.get("arm")): str(c.get("status")) for c in per if isinstance(c, dict)}


def _summary_lines(document: dict[str, Any]) -> list[str]:
    verdict = document.get("verdict") or {}
    lines = [f"verdict: {verdict.get('verdict', 'none')}"]
    lines += [f"  - {reason}" for reason in verdict.get("reasons") or []]
    lines.append("")
    lines.append(f"{'metric':<22}{'candidate':<12}{'estimate':>12}{'95% CI':>26}{'p (adj.)':>11}")
    for c in document.get("comparisons") or []:
        if c.get("candidate") == "control-aa":
            continue
        ci = f"[{_fmt(c.get('ci_low'))}, {_fmt(c.get('ci_high'))}]"
        lines.append(
            f"{str(c.get('metric'))[:21]:<22}{str(c.get('candidate')):<12}{_fmt(c.get('estimate')):>12}"
            f"{ci:>26}{_fmt(c.get('p_adjusted')):>11}"
        )
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return "—"


def run_demo(
    options: DemoOptions, echo: Echo, ingest: Callable[[Stages, DemoOptions], None] | None = None
) -> DemoResult:
    """Run the pipeline end to end and check the verdict against the truth built into the simulator."""
    out = options.out.resolve()
    _prepare(out)
    spec = TrafficSpec(n_captures=options.n_captures, seed=options.seed)
    (out / "prices.json").write_text(json.dumps(setup.prices(), indent=2))
    experiment = setup.experiment(EXPERIMENT, options.n_captures)
    (out / "experiment.yaml").write_text(yaml.safe_dump(experiment, sort_keys=False))
    database_url = options.database_url or f"sqlite:///{out / 'shadowlab.db'}"
    echo(
        f"shadowlab demo: {options.n_captures} synthetic production requests, seed {options.seed}; "
        f"outputs in {out}"
    )
    with simulator(out, options.seed) as base_url:
        stages = Stages(_environment(options, base_url, database_url), echo, out)
        echo("\n1. the database")
        stages.run("db", "upgrade")
        echo("\n2. capture: production traffic (with PII and some malformed messages) into the pipeline")
        if ingest is None:
            lines = write_jsonl(spec, out / "captures.jsonl")
            echo(f"   wrote {lines} lines to captures.jsonl")
            stages.run("ingest", "--source", "file", str(out / "captures.jsonl"))
        else:
            ingest(stages, options)
        echo("\n3. the experiment: control sim-sonnet; candidates sim-haiku and sim-flash; an A/A arm")
        stages.run("experiment", "create", str(out / "experiment.yaml"), "--created-by", "demo")
        stages.run("experiment", "start", EXPERIMENT)
        echo("\n4. shadow replay of every captured request to every arm")
        # 12 requests at a time (48 streams): on 2 cores, 48 requests (192 streams) made the replayer's own
        # event-loop lag most of the measured TTFT (haiku read 0.79× the control against a true 0.62×), and
        # that lag, shared by both arms of a request, shrank the A/A timing intervals until chance failed.
        stages.run("replay", EXPERIMENT, "--backfill", "--concurrency", "12")
        echo("\n5. scoring: pointwise and pairwise (both orders) LLM judge")
        stages.run("score", EXPERIMENT, "--concurrency", "32")
        echo("\n6. analysis and the pre-registered decision rule")
        raw = stages.run("analyze", EXPERIMENT, "--json", capture=True)
        echo("\n7. the shareable report and the routing recommendation")
        stages.run("report", EXPERIMENT, "--format", "html", "--out", str(out / "report.html"))
        routing = json.loads(
            stages.run("route", EXPERIMENT, "--json", "--export", str(out / "routing.yaml"), capture=True)
        )
    document = json.loads(raw)
    analysis_file = out / "analysis.json"
    analysis_file.write_text(json.dumps(document, indent=2))
    checked, mismatches = truth_check(document)
    result = DemoResult(
        verdict=(document.get("verdict") or {}).get("verdict"),
        expected_verdict=setup.expected_verdict(),
        statuses=_statuses(document),
        expected={arm.name: setup.expected_status(arm) for arm in setup.CANDIDATES},
        analysis_file=analysis_file,
        routes={s["segment"]: s["arm"] for s in routing.get("segments", [])},
        checked=checked,
        mismatches=mismatches,
    )
    result.routes_ok = bool(result.routes) and all(
        arm in setup.expected_route(segment) for segment, arm in result.routes.items()
    )
    for line in _summary_lines(document):
        echo(line)
    echo("")
    for arm in setup.CANDIDATES:
        echo(f"truth: {arm.name} really loses {-setup.expected_quality_delta(arm):.2f} judge points "
             f"(allowed: {setup.QUALITY_MARGIN}) → should {result.expected[arm.name]}; "
             f"it did {result.statuses.get(arm.name, 'not appear')}")  # fmt: skip
    echo(f"truth: the verdict should be {result.expected_verdict}; it is {result.verdict}")
    echo(f"checked against the truth ({len(result.checked)} items: the verdict, each candidate's deciding "
         "checks, every health check):")  # fmt: skip
    for line in result.checked:
        echo(f"  {'WRONG' if line in result.mismatches else 'ok   '} {line}")
    echo("routing (easy routes may move to haiku, hard ones must stay on control):")
    for segment in routing.get("segments", []):
        ok = "ok" if segment["arm"] in setup.expected_route(segment["segment"]) else "WRONG"
        echo(f"  {segment['segment']:<26} {segment['share']:>6.1%} → {segment['arm']:<8} "
             f"{segment['status']:<10} {ok}")  # fmt: skip
    saving = saving_sentence(routing)
    if saving is not None:
        echo(f"  {saving}")
    if result.matches_truth:
        echo("the verdict, its reasons, the health checks and the routing MATCH the truth in the simulator")
    else:
        echo(f"the analysis does NOT match the truth built into the simulator: {len(result.mismatches)} "
             f"item(s) WRONG above{'' if result.routes_ok else ', and the routing is wrong'}")  # fmt: skip
    echo(f"\noutputs: {out}  (report.html, analysis.json, routing.yaml, experiment.yaml, shadowlab.db)")
    echo(f"dashboard: SHADOWLAB_DATABASE_URL={database_url} shadowlab dashboard")
    return result


def dead_letters(spec: TrafficSpec) -> Sequence[bytes]:
    """The malformed messages of the stream (for the Kafka path, produced raw beside the tee)."""
    from demo.traffic import generate

    return [m for m in generate(spec) if not m.startswith(b'{"schema_version":1')]
