"""The two wheels: the platform's ships the migrations, so `shadowlab db upgrade` works from an installed
package; the tee's (packages/shadowlab-tee) installs alone with kafka-python and mirrors real SDK calls.

Both are built offline (uv's cache), and the fresh venv is filled from the cache too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import uuid
import zipfile
from collections.abc import Callable
from email.parser import HeaderParser
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

import shadowlab.tee
import shadowlab_tee
from shadowlab.apis.anthropic_wire import AnthropicMessagesRequest
from shadowlab.capture import parse_capture_bytes
from simulator import running_simulator
from tests.support import tee_wheel

ROOT = Path(__file__).resolve().parents[1]
TEE_PYPROJECT = tomllib.loads((tee_wheel.TEE_PROJECT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tee_wheel.build_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="module")
def wheel(wheels: tuple[Path, Path]) -> Path:
    return wheels[0]


@pytest.fixture(scope="module")
def tee_wheel_file(wheels: tuple[Path, Path]) -> Path:
    return wheels[1]


def requires(wheel: Path) -> list[str]:
    archive = zipfile.ZipFile(wheel)
    metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    return HeaderParser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist") or []


def test_wheel_ships_every_package_and_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("shadowlab", "ingest", "replayer", "scoring", "analysis", "dashboard", "migrations"):
        assert f"{package}/__init__.py" in names
    assert "migrations/env.py" in names
    assert "migrations/script.py.mako" in names
    shipped = {Path(n).name for n in names if n.startswith("migrations/versions/") and n.endswith(".py")}
    in_repo = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert in_repo <= shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "shadowlab = cli.entry:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_platform_wheel_depends_on_the_tee_instead_of_shipping_it(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "shadowlab/tee.py" in names  # the re-export
    assert not [n for n in names if n.startswith(("shadowlab/tee/", "shadowlab_tee"))]
    assert f"shadowlab-tee=={TEE_PYPROJECT['project']['version']}" in requires(wheel)


def test_the_tee_wheel_holds_the_tee_and_needs_only_kafka_python(tee_wheel_file: Path) -> None:
    names = zipfile.ZipFile(tee_wheel_file).namelist()
    assert {n.split("/")[0] for n in names} == {"shadowlab_tee", "shadowlab_tee-0.1.0.dist-info"}
    shipped = {Path(n).name for n in names if n.startswith("shadowlab_tee/")}
    assert {p.name for p in (tee_wheel.TEE_PROJECT / "shadowlab_tee").glob("*.py")} | {"py.typed"} == shipped
    assert [r.split(">=")[0] for r in requires(tee_wheel_file)] == ["kafka-python"]


def test_the_image_copies_and_installs_both_projects(wheel: Path) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.M))
    shipped = {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    assert shipped <= copied, f"the Dockerfile does not COPY {sorted(shipped - copied)}"
    assert "packages/shadowlab-tee" in copied
    # The lock's workspace members are installed from the copied folders, not from the hashed requirements.
    assert "--no-emit-workspace" in dockerfile
    assert "pip install --no-deps ./packages/shadowlab-tee" in dockerfile


def test_shadowlab_tee_re_exports_the_tee_s_public_names() -> None:
    assert shadowlab.tee.__all__ == shadowlab_tee.__all__
    for name in shadowlab_tee.__all__:
        assert getattr(shadowlab.tee, name) is getattr(shadowlab_tee, name), name


# Run inside the fresh venv: the app's own code, wrapping the official SDK pointed at the simulator.
APP = """
import json, sys
import anthropic
import shadowlab_tee as tee

base_url, bootstrap, topic, run = sys.argv[1:]
sink = tee.KafkaSink(bootstrap, topic=topic)
client = tee.wrap(anthropic.Anthropic(base_url=base_url, api_key="k"), sink, tee.Source(service="wheel-app"))
request = {"model": "sim-model", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello?"}]}
whole = client.messages.create(**request, tee_request_id=run + "-whole")
with client.messages.stream(**request, tee_request_id=run + "-stream") as stream:
    streamed = "".join(stream.text_stream)
delivered = sink.flush(30)
sink.close(timeout=5)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"shadowlab", "pydantic_settings", "sqlalchemy"})
print(json.dumps({"whole": whole.content[0].text, "streamed": streamed, "delivered": delivered,
                  "sent": sink.stats().sent, "heavy": heavy}))
"""


@pytest.mark.kafka
def test_the_tee_wheel_installs_alone_and_mirrors_calls_to_the_simulator(
    tee_wheel_file: Path, tmp_path: Path, kafka_bootstrap: str, kafka_topic: Callable[..., str]
) -> None:
    constraints = tee_wheel.locked_constraints(tmp_path / "constraints.txt")
    python = tee_wheel.fresh_venv(tmp_path / "app")
    tee_wheel.install(python, constraints, tee_wheel_file)
    assert tee_wheel.installed(python) == {"shadowlab-tee", "kafka-python"}
    # The production app brings its own SDK; the tee adds nothing of the platform to it.
    tee_wheel.install(python, constraints, "anthropic")
    topic = kafka_topic(prefix="tee-wheel")
    run = uuid.uuid4().hex[:8]
    with running_simulator(seed=3) as sim:
        result = subprocess.run(
            [str(python), "-I", "-c", APP, sim.base_url, kafka_bootstrap, topic, run],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    app = json.loads(result.stdout)
    assert app["delivered"] and app["sent"] == 2 and app["heavy"] == []
    captures = {c.request_id: c for c in map(parse_capture_bytes, consume_values(kafka_bootstrap, topic, 2))}
    assert set(captures) == {f"{run}-whole", f"{run}-stream"}
    whole, streamed = captures[f"{run}-whole"], captures[f"{run}-stream"]
    assert whole.source.service == streamed.source.service == "wheel-app"
    assert whole.response is not None and whole.response.text == app["whole"]
    assert streamed.response is not None and streamed.response.text == app["streamed"]
    assert isinstance(streamed.request, AnthropicMessagesRequest)  # the app calls Anthropic's Messages API
    assert isinstance(whole.request, AnthropicMessagesRequest)
    assert streamed.request.stream is True and whole.request.stream is None


def consume_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    values: list[bytes] = []
    deadline = time.monotonic() + 60  # the tee reported them delivered: this bounds a broken broker only
    try:
        while len(values) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=1000).values():
                values += [r.value for r in batch]
    finally:
        consumer.close()
    return values


def test_upgrade_runs_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """Unpack the wheel alone on sys.path (no repo checkout) and migrate a fresh SQLite file."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    db = tmp_path / "w.db"
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import migrations, shadowlab;"
        "assert migrations.__file__.startswith(sys.argv[1]), migrations.__file__;"
        "from cli.main import main; sys.argv = ['shadowlab', 'db', 'upgrade']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"SHADOWLAB_DATABASE_URL": f"sqlite:///{db}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    assert result.stdout.strip().endswith(f": {head}")
