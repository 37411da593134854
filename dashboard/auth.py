"""Who may use the dashboard: users from a YAML file with bcrypt hashes, or a trusted reverse-proxy header.

Pure functions, no Streamlit: the router keeps only a `Login` (name, role, expiry) in the session, never a
password or a hash, and nothing here logs a password.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

import bcrypt
import yaml

from shadowlab.config import Settings
from shadowlab.errors import ShadowlabError, yaml_problem
from shadowlab.store import changes

Role = Literal["viewer", "decider"]
AuthMode = Literal["password", "header", "off"]
ROLES: tuple[str, ...] = get_args(Role)
BCRYPT_MAX_BYTES = 72  # bcrypt ignores (bcrypt>=5: refuses) longer passwords
# who acts when no one signs in (authentication off): the name decisions and experiment changes record
LOCAL_USER = changes.LOCAL_USER
SIGN_IN_FAILED = "Wrong user name or password."
# A valid hash to check against when the user is unknown, so both failures take as long.
_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=12))


class AuthError(ShadowlabError):
    """Signing in failed; the message is safe to show to the person signing in."""


class UsersFileError(AuthError):
    """The users file is missing or malformed; the message names the file and the entry."""

    exit_code = 2


class UnknownUserError(AuthError):
    """No such user in the users file (or no user named by the proxy)."""


class SignInFailedError(AuthError):
    """Unknown user, wrong password or an account without one: one message for all three, so the form
    tells nobody which user names exist."""


class ThrottledError(AuthError):
    """Too many failed sign-ins for this user name or from this client; the message says when to retry."""


class SessionExpiredError(AuthError):
    """The login is older than the configured session length."""


class PasswordError(AuthError):
    """A password cannot be hashed (empty, or longer than bcrypt accepts)."""

    exit_code = 2  # `dashboard add-user`: bad input


@dataclass(frozen=True)
class User:
    """An authenticated person and what they may do."""

    name: str
    role: Role

    @property
    def can_declare(self) -> bool:
        return self.role == "decider"


@dataclass(frozen=True)
class Account:
    """One entry of the users file; the hash stays on the server."""

    name: str
    role: Role
    password_hash: bytes | None  # None: signs in through the proxy header only

    def __repr__(self) -> str:  # keep the hash out of logs and tracebacks
        return f"Account(name={self.name!r}, role={self.role!r})"


@dataclass(frozen=True)
class Login:
    """What the session keeps after signing in: no secret, only who and until when."""

    name: str
    role: Role
    expires_at: datetime

    @property
    def user(self) -> User:
        return User(self.name, self.role)


@dataclass(frozen=True)
class AuthConfig:
    """How this dashboard authenticates, from the settings."""

    mode: AuthMode
    accounts: Mapping[str, Account]
    session_minutes: int
    header: str | None = None


def hash_password(password: str) -> str:
    """A bcrypt hash of `password` for the users file."""
    raw = password.encode()
    if not raw:
        raise PasswordError("password: expected at least one character, found an empty password")
    if len(raw) > BCRYPT_MAX_BYTES:
        raise PasswordError(f"password: expected at most {BCRYPT_MAX_BYTES} bytes, found {len(raw)}")
    return bcrypt.hashpw(raw, bcrypt.gensalt()).decode()


def _account(entry: object, where: str) -> Account:
    if not isinstance(entry, dict):
        raise UsersFileError(f"{where}: expected a mapping with name, role, password_hash")
    name, role, digest = entry.get("name"), entry.get("role"), entry.get("password_hash")
    if not isinstance(name, str) or not name.strip():
        raise UsersFileError(f"{where}.name: expected a non-empty string, found {name!r}")
    if role not in ROLES:
        raise UsersFileError(f"{where}.role: expected one of {', '.join(ROLES)}, found {role!r}")
    if digest is not None and not (isinstance(digest, str) and digest.startswith("$2")):
        raise UsersFileError(f"{where}.password_hash: expected a bcrypt hash ($2b$…) or nothing")
    return Account(name.strip(), role, None if digest is None else digest.encode())


def load_users(path: Path) -> dict[str, Account]:
    """Read the users file: `users: [{name, role: viewer|decider, password_hash}]`."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsersFileError(f"SHADOWLAB_DASHBOARD_USERS: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsersFileError(
            f"SHADOWLAB_DASHBOARD_USERS: {path} is not valid YAML: {yaml_problem(exc)}"
        ) from None
    entries = document.get("users") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise UsersFileError(f"{path}: expected a top-level `users:` list")
    accounts: dict[str, Account] = {}
    for i, entry in enumerate(entries):
        account = _account(entry, f"{path}: users[{i}]")
        if account.name in accounts:
            raise UsersFileError(f"{path}: users[{i}].name: {account.name!r} appears twice")
        accounts[account.name] = account
    return accounts


def auth_config(settings: Settings) -> AuthConfig:
    """Header mode when a trusted header is set, password mode with a users file, else off (local use)."""
    accounts = load_users(settings.dashboard_users) if settings.dashboard_users is not None else {}
    minutes = settings.dashboard_session_minutes
    if settings.dashboard_trusted_header:
        return AuthConfig("header", accounts, minutes, settings.dashboard_trusted_header)
    if settings.dashboard_users is not None:
        return AuthConfig("password", accounts, minutes)
    return AuthConfig("off", {}, minutes)


def authenticate(accounts: Mapping[str, Account], name: str, password: str) -> User:
    """The user whose name and password match; `SignInFailedError` (one message) otherwise."""
    account = accounts.get(name.strip())
    raw = password.encode()[: BCRYPT_MAX_BYTES + 1]
    if account is None or account.password_hash is None:
        bcrypt.checkpw(raw[:BCRYPT_MAX_BYTES], _DUMMY_HASH)
        raise SignInFailedError(SIGN_IN_FAILED)
    if len(raw) > BCRYPT_MAX_BYTES or not bcrypt.checkpw(raw, account.password_hash):
        raise SignInFailedError(SIGN_IN_FAILED)
    return User(account.name, account.role)


@dataclass
class LoginThrottle:
    """Failed sign-ins per user name and per client over a sliding window, shared by every session of one
    dashboard process: after `max_failures` within `window_s`, that name (or client) is refused, without
    spending a bcrypt hash on it, until its oldest failure leaves the window. Success clears the name."""

    max_failures: int = 5
    window_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000  # beyond this, the stalest keys are forgotten (bounded memory under a flood)
    _failures: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_s(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [self._wait(key, now) for key in keys]
        return max(waits, default=0.0)

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > self.max_keys:
                stalest = sorted(self._failures, key=lambda k: self._failures[k][-1])
                for key in stalest[: len(self._failures) - self.max_keys]:
                    del self._failures[key]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        return times[0] + self.window_s - now if len(times) >= self.max_failures else 0.0


def sign_in(
    accounts: Mapping[str, Account], throttle: LoginThrottle, name: str, password: str, client: str | None
) -> User:
    """`authenticate`, refused while the name or the client is throttled; failures count against both."""
    keys = [f"user:{name.strip().casefold()}", *([f"client:{client}"] if client else [])]
    wait = throttle.wait_s(keys)
    if wait > 0:
        raise ThrottledError(f"Too many failed sign-ins. Try again in {math.ceil(wait)} s.")
    try:
        user = authenticate(accounts, name, password)
    except SignInFailedError:
        throttle.failed(keys)
        raise
    throttle.succeeded(keys[0])
    return user


def start_session(user: User, minutes: int, now: datetime) -> Login:
    return Login(user.name, user.role, now + timedelta(minutes=minutes))


def check_session(login: Login, accounts: Mapping[str, Account], now: datetime) -> User:
    """The signed-in user while the login is fresh and the account still exists (role as in the file now)."""
    if now >= login.expires_at:
        raise SessionExpiredError("Your session expired. Sign in again.")
    account = accounts.get(login.name)
    if account is None:
        raise UnknownUserError(f"User {login.name!r} was removed from the users file.")
    return User(account.name, account.role)


def user_from_header(headers: Mapping[str, str], config: AuthConfig) -> User:
    """The user named by the proxy's header; role from the users file when there is one, else viewer."""
    assert config.header is not None
    name = next((v for k, v in headers.items() if k.lower() == config.header.lower()), "").strip()
    if not name:
        raise UnknownUserError(f"No {config.header} header: the reverse proxy did not authenticate you.")
    if not config.accounts:
        return User(name, "viewer")
    account = config.accounts.get(name)
    if account is None:
        raise UnknownUserError(f"Unknown user {name!r}: ask an administrator to add you.")
    return User(account.name, account.role)
