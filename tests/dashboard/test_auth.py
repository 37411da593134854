"""Sign-in: users file with bcrypt hashes, clear messages for each failure, expiring sessions, roles."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from dashboard.auth import (
    Account,
    AuthConfig,
    Login,
    PasswordError,
    SessionExpiredError,
    SignInFailedError,
    UnknownUserError,
    User,
    UsersFileError,
    authenticate,
    check_session,
    hash_password,
    load_users,
    start_session,
    user_from_header,
)
from dashboard.command import check_auth
from dashboard.views.common import md_escape
from shadowlab.config import load_settings
from shadowlab.errors import ConfigError
from tests.support.dashboard_seed import APP

PASSWORDS = {"erin": "correct horse battery", "pat": "viewer-secret-42"}


@pytest.fixture(scope="module")
def users_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.yaml"
    roles = {"erin": "decider", "pat": "viewer"}
    entries = [{"name": n, "role": roles[n], "password_hash": hash_password(p)} for n, p in PASSWORDS.items()]
    path.write_text(yaml.safe_dump({"users": entries}))
    return path


def test_the_users_file_holds_hashes_only(users_file: Path) -> None:
    text = users_file.read_text()
    assert all(password not in text for password in PASSWORDS.values())
    accounts = load_users(users_file)
    assert {n: a.role for n, a in accounts.items()} == {"erin": "decider", "pat": "viewer"}
    assert "$2b$" not in repr(accounts["erin"])


def test_authenticate_fails_alike_for_an_unknown_user_and_a_wrong_password(users_file: Path) -> None:
    accounts = load_users(users_file)
    assert authenticate(accounts, "erin", PASSWORDS["erin"]) == User("erin", "decider")
    with pytest.raises(SignInFailedError, match="^Wrong user name or password.$"):
        authenticate(accounts, "erin", PASSWORDS["pat"])
    with pytest.raises(SignInFailedError):
        authenticate(accounts, "erin", "x" * 100)  # longer than bcrypt reads: never a prefix match
    with pytest.raises(SignInFailedError, match="^Wrong user name or password.$"):
        authenticate(accounts, "mallory", "anything")


def test_a_session_expires_and_a_removed_user_is_signed_out() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    accounts = {"erin": Account("erin", "decider", None)}
    login = start_session(User("erin", "decider"), 30, now)
    assert check_session(login, accounts, now + timedelta(minutes=29)) == User("erin", "decider")
    with pytest.raises(SessionExpiredError, match="expired"):
        check_session(login, accounts, now + timedelta(minutes=30))
    with pytest.raises(UnknownUserError, match="removed"):
        check_session(login, {}, now)


def test_a_trusted_header_names_the_user_and_the_file_gives_the_role(users_file: Path) -> None:
    with_file = AuthConfig("header", load_users(users_file), 60, "X-Forwarded-User")
    assert user_from_header({"x-forwarded-user": "erin"}, with_file) == User("erin", "decider")
    with pytest.raises(UnknownUserError, match="Unknown user 'eve'"):
        user_from_header({"X-Forwarded-User": "eve"}, with_file)
    with pytest.raises(UnknownUserError, match="No X-Forwarded-User header"):
        user_from_header({}, with_file)
    anyone = AuthConfig("header", {}, 60, "X-Forwarded-User")
    assert user_from_header({"X-Forwarded-User": "eve"}, anyone) == User("eve", "viewer")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("users: [{name: a, role: admin, password_hash: '$2b$x'}]", r"users\[0\]\.role"),
        ("users: [{name: a, role: viewer, password_hash: plain}]", r"users\[0\]\.password_hash"),
        ("users: [{name: a, role: viewer}, {name: a, role: decider}]", "appears twice"),
        ("- a", "top-level `users:` list"),
    ],
)
def test_a_malformed_users_file_names_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "users.yaml"
    path.write_text(content)
    with pytest.raises(UsersFileError, match=message):
        load_users(path)


def test_passwords_bcrypt_cannot_hash_are_refused() -> None:
    with pytest.raises(PasswordError, match="empty"):
        hash_password("")
    with pytest.raises(PasswordError, match="at most 72 bytes"):
        hash_password("é" * 40)


def test_hash_password_command_reads_stdin(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "dashboard", "hash-password"],
        input="s3cret pass\n", capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    accounts = {"u": Account("u", "viewer", digest.encode())}
    assert authenticate(accounts, "u", "s3cret pass") == User("u", "viewer")
    assert "s3cret" not in result.stdout + result.stderr


def test_serving_beyond_loopback_without_auth_is_refused(users_file: Path) -> None:
    open_settings = load_settings(database_url="sqlite://")
    with pytest.raises(ConfigError, match="--host 0.0.0.0"):
        check_auth(open_settings, "0.0.0.0", no_auth=False)
    check_auth(open_settings, "0.0.0.0", no_auth=True)
    check_auth(open_settings, "127.0.0.1", no_auth=False)
    check_auth(load_settings(database_url="sqlite://", dashboard_users=users_file), "0.0.0.0", no_auth=False)


# --- the gate in the app (AppTest) ---------------------------------------------------------------------


@pytest.fixture
def secured_app(users_file: Path, migrated: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    monkeypatch.setenv("SHADOWLAB_DASHBOARD_USERS", str(users_file))

    def make(login: Login | None = None) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60)
        if login is not None:
            at.session_state["login"] = login
        return at.run()

    return make


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input[0].input(name)
    at.text_input[1].input(password)
    return at.button[0].click().run()


@pytest.mark.postgres
def test_login_page_messages_and_no_password_kept(
    secured_app: Callable[..., AppTest], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    at = secured_app()
    assert [h.value for h in at.header] == ["Sign in to shadowlab"]
    at = _sign_in(at, "mallory", "whatever")
    assert [e.value for e in at.error] == [md_escape("Wrong user name or password.")]
    at = _sign_in(at, "erin", "wrong password")
    assert [e.value for e in at.error] == [md_escape("Wrong user name or password.")]
    at = _sign_in(at, "erin", PASSWORDS["erin"])
    assert not at.exception and not at.error
    login = at.session_state["login"]
    assert isinstance(login, Login) and (login.name, login.role) == ("erin", "decider")
    assert at.text_input.len == 0 or all(t.value != PASSWORDS["erin"] for t in at.text_input)
    assert PASSWORDS["erin"] not in caplog.text
    assert any(c.value.startswith("Signed in as erin") for c in at.sidebar.caption)


@pytest.mark.postgres
def test_an_expired_session_asks_to_sign_in_again(secured_app: Callable[..., AppTest]) -> None:
    expired = Login("erin", "decider", datetime.now(UTC) - timedelta(seconds=1))
    at = secured_app(expired)
    assert [w.value for w in at.warning] == [md_escape("Your session expired. Sign in again.")]
    assert [h.value for h in at.header] == ["Sign in to shadowlab"]
    assert "login" not in at.session_state


@pytest.mark.postgres
def test_a_viewer_is_not_shown_the_decide_page(
    secured_app: Callable[..., AppTest], new_experiment: Callable[..., int]
) -> None:
    new_experiment()
    fresh = datetime.now(UTC) + timedelta(minutes=5)
    decider = secured_app(Login("erin", "decider", fresh)).switch_page("views/decide.py").run()
    assert [h.value for h in decider.header][-1].startswith("Decide")
    viewer = secured_app(Login("pat", "viewer", fresh))
    with pytest.raises(Exception, match="decide"):
        viewer.switch_page("views/decide.py").run()
    assert not any(h.value.startswith("Decide") for h in viewer.header)
