"""`shadowlab dashboard`: serve the Streamlit app with the settings in its environment; manage users."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from shadowlab.config import Settings
from shadowlab.errors import ConfigError
from shadowlab.files import output_file

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line for the dashboard."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP_PATH),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # readers see no "Deploy" button or developer menu in the page's toolbar
        "--client.toolbarMode", "viewer",
        # A served dashboard does not reload its code when a source file changes (Streamlit's developer mode):
        # an edit or a deploy under a running server re-imported dashboard.auth, and every signed-in session's
        # login, an instance of the class imported before, no longer passed as one: everyone was signed out.
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int) -> None:
    """A `ConfigError` when nothing could listen on host:port (in use, not this machine's, no such name):
    Streamlit would say only "Port N is not available" and exit 1, after our banner."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit's server binds
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def dashboard_env(settings: Settings) -> dict[str, str]:
    """The settings the app reads, passed explicitly (they may have come from `.env` or flags)."""
    env = {
        "SHADOWLAB_DATABASE_URL": settings.database_url,
        "SHADOWLAB_DASHBOARD_SESSION_MINUTES": str(settings.dashboard_session_minutes),
        "SHADOWLAB_LOG_LEVEL": settings.log_level,
        "SHADOWLAB_LOG_FORMAT": settings.log_format,
    }
    if settings.dashboard_users is not None:
        env["SHADOWLAB_DASHBOARD_USERS"] = str(settings.dashboard_users.resolve())
    if settings.dashboard_trusted_header:
        env["SHADOWLAB_DASHBOARD_TRUSTED_HEADER"] = settings.dashboard_trusted_header
    return env


def check_auth(settings: Settings, host: str, no_auth: bool, behind_proxy: bool = False) -> None:
    """Fail before serving: a malformed users file, no authentication on a non-loopback address, or a
    trusted header on a non-loopback address without `--behind-proxy` (any client could send the header)."""
    if settings.dashboard_users is not None:
        from dashboard.auth import load_users  # bcrypt loads only when a users file is checked

        load_users(settings.dashboard_users)
    configured = settings.dashboard_users is not None or bool(settings.dashboard_trusted_header)
    if not configured and not no_auth and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: serving beyond this machine needs SHADOWLAB_DASHBOARD_USERS or "
            "SHADOWLAB_DASHBOARD_TRUSTED_HEADER (or --no-auth, if you really mean everyone may decide)"
        )
    if settings.dashboard_trusted_header and not behind_proxy and not is_loopback(host):
        raise ConfigError(
            f"--host {host}: with SHADOWLAB_DASHBOARD_TRUSTED_HEADER any client that reaches this address "
            f"can send {settings.dashboard_trusted_header} and be anyone; pass --behind-proxy once only the "
            "authenticating proxy can reach it (firewall or private network), or bind 127.0.0.1"
        )


def read_password() -> str:
    """From a hidden prompt on a terminal (asked twice), else the first line of stdin."""
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def check_new_user(path: Path, name: str, role: str, replace: bool) -> dict[str, Any] | None:
    """Check an `add-user` before asking for a password; return the users file's document (None: no file).

    The file is read with the dashboard's own loader, so a malformed file is refused, never rewritten.
    """
    from dashboard.auth import ROLES, UsersFileError, load_users

    if role not in ROLES:
        raise ConfigError(f"--role: expected one of {', '.join(ROLES)}, found {role!r}")
    if not name.strip():
        raise ConfigError("NAME: expected a non-empty user name")
    output_file(path, "USERS_FILE")  # in a folder that exists, not a folder itself
    if not path.exists():
        return None
    if name.strip() in load_users(path) and not replace:
        raise UsersFileError(
            f"{path}: user {name.strip()!r} exists: pass --replace to change their password or role"
        )
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)  # load_users accepted it
    return document


def add_user(path: Path, name: str, role: str, password_hash: str, replace: bool = False) -> bool:
    """Write NAME with its role and hash to the users file (created when missing); True when NAME is new.

    The file is replaced atomically, so a dashboard reading it meanwhile sees the old file or the new one.
    """
    document = check_new_user(path, name, role, replace)
    entries: list[Any] = list(document["users"]) if document is not None else []
    entry = {"name": name.strip(), "role": role, "password_hash": password_hash}
    at = next(
        (
            i
            for i, e in enumerate(entries)
            if isinstance(e, dict) and str(e.get("name", "")).strip() == entry["name"]
        ),
        None,
    )
    if at is None:
        entries.append(entry)
    else:
        entries[at] = entry
    text = yaml.safe_dump({"users": entries}, sort_keys=False, width=1000)
    # Hashes, not passwords: like htpasswd, a new file gets the umask's mode (the dashboard may run as
    # another user, e.g. in its container); an existing file keeps its own.
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    if document is not None:
        os.chmod(partial, path.stat().st_mode & 0o777)
    os.replace(partial, path)
    return at is None


def register(app: typer.Typer, settings_of: Callable[[typer.Context], Settings]) -> None:
    """Add `shadowlab dashboard` (serve), `dashboard hash-password` and `dashboard add-user` to the CLI."""
    group = typer.Typer(invoke_without_command=True, no_args_is_help=False)

    @group.callback()
    def dashboard(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
        no_auth: Annotated[
            bool, typer.Option("--no-auth", help="Serve without sign-in even on a non-loopback address.")
        ] = False,
        behind_proxy: Annotated[
            bool,
            typer.Option(
                "--behind-proxy",
                help="With a trusted header on a non-loopback address: only the proxy can reach it.",
            ),
        ] = False,
    ) -> None:
        """Serve the dashboard (experiments, verdict and evidence, labelling, decisions, live monitor)."""
        if ctx.invoked_subcommand is not None:
            return
        settings = settings_of(ctx)
        check_auth(settings, host, no_auth, behind_proxy)
        check_listen(host, port)
        env = dict(os.environ) | dashboard_env(settings)
        if settings.dashboard_users is None and not settings.dashboard_trusted_header:
            typer.echo("warning: authentication is off (no SHADOWLAB_DASHBOARD_USERS): everyone may decide")
        typer.echo(f"dashboard on http://{host}:{port} (Ctrl-C stops it)")
        sys.stdout.flush()
        # Become the Streamlit server, so signals (Ctrl-C, SIGTERM from a supervisor) reach it directly.
        command = streamlit_command(host, port)
        os.execve(command[0], command, env)

    @group.command("hash-password")
    def hash_password_command() -> None:
        """Read a password (prompt, or stdin when piped) and print its bcrypt hash for the users file."""
        from dashboard.auth import hash_password

        typer.echo(hash_password(read_password()))

    @group.command("add-user")
    def add_user_command(
        users_file: Annotated[Path, typer.Argument(help="Users file to update (created when missing).")],
        name: Annotated[str, typer.Argument(help="User name (what they type to sign in).")],
        role: Annotated[str, typer.Option(help="viewer (reads) or decider (also declares decisions).")] = (
            "viewer"
        ),
        replace: Annotated[
            bool, typer.Option("--replace", help="Change the password and role of an existing user.")
        ] = False,
    ) -> None:
        """Read a password (prompt, or stdin when piped) and write NAME with its bcrypt hash to USERS_FILE."""
        from dashboard.auth import hash_password

        check_new_user(users_file, name, role, replace)  # before the prompt: a typo costs no password
        added = add_user(users_file, name, role, hash_password(read_password()), replace)
        typer.echo(f"{'added' if added else 'updated'} {name.strip()} ({role}) in {users_file}")

    app.add_typer(group, name="dashboard")
