"""Why the database could not be used, in one line with the hint that fits: a setting to fix (`ConfigError`,
exit 2) or a server out of reach or in trouble (`ServiceUnavailableError`, exit 3).

psycopg gives no SQLSTATE for a failed connect (libpq keeps the server's code to itself; psycopg issues #242,
#1188), so a refused connect is told apart by libpq's words: the server's answer ("password authentication
failed", "database ... does not exist") is a setting, while no answer (connection refused, a timeout, a host
name that does not resolve, a connection ended during the login) or one that passes by itself (starting up,
out of connection slots: the line names the limit) is a server out of reach. A statement that fails after
connecting carries its SQLSTATE: classes 53 (out of disk, memory, connections), 58 (its files) and XX
(internal error, corruption) are the server in trouble, not a setting. SQLite's errors carry their result
code's name. Standard library only: `analysis.prefetch`, which
runs before anything else is imported, shares `PASSING`.
"""

from __future__ import annotations

import re

from shadowlab.errors import ConfigError, ServiceUnavailableError, ShadowlabError

SETTING = "SHADOWLAB_DATABASE_URL"

# Refusals that pass by themselves: a server starting, shutting down or recovering, or out of connections.
PASSING = (
    "starting up",
    "shutting down",
    "in recovery",
    "not yet accepting connections",  # a standby before it is consistent
    "too many clients",
    "connection slots",
    "too many connections for",  # a role's or a database's CONNECTION LIMIT
)
# Refusals of a server out of connection slots (no SQLSTATE at connect: its words), each with what frees one
_FULL: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("too many clients", "connection slots"),  # max_connections, less the slots reserved for superusers
        "all of the server's connections are in use: close idle sessions (pg_stat_activity), put a pooler in "
        "front or raise the server's max_connections, then try again",
    ),
    (
        ("too many connections for role",),
        "the role's connection limit is reached: close its idle sessions or raise the limit (ALTER ROLE ... "
        "CONNECTION LIMIT), then try again",
    ),
    (
        ("too many connections for database",),
        "the database's connection limit is reached: close its idle sessions or raise the limit (ALTER "
        "DATABASE ... CONNECTION LIMIT), then try again",
    ),
)
# The server's answers to a login that name a setting, each with what the setting should be; the first whose
# words the reason holds (pg_hba.conf's refusal quotes the database: it comes before `database "`).
_REFUSALS = (
    (
        ("password authentication failed", "no password supplied", "authentication failed for user"),
        "refused the login",
        "expected the user and password of a role that may log in",
    ),
    (
        ("authentication method requirement", "channel binding"),  # libpq's own refusal of the server's way
        "does not authenticate as the URL requires",
        "expected require_auth= and channel_binding= that the server's way of logging in meets, or none",
    ),
    (
        ("GSSAPI", "gssencmode"),
        "cannot be connected to as the URL says",
        "expected a gssencmode that this machine's Kerberos credentials and the server support, or none",
    ),
    (
        ("definition of service", "service file"),
        "cannot be connected to as the URL says",
        "expected a service= that the pg_service.conf libpq reads defines (PGSERVICEFILE), or none",
    ),
    (
        ('role "', "is not permitted to log in"),
        "refused the login",
        "expected a role that exists and may log in",
    ),
    (
        ("permission denied for database",),
        "refused the connection",
        "expected a database the user may connect to (its owner grants CONNECT)",
    ),
    (
        ("pg_hba.conf",),
        "refused the connection",
        "expected a user and database that the server's pg_hba.conf admits from this machine",
    ),
    (
        ('database "',),
        "refused the connection",
        "expected the name of a database that exists there and takes connections; createdb makes one",
    ),
    (
        ("does not support SSL", "sslmode", "certificate", "root cert"),
        "refused the connection",
        "expected an sslmode (and certificates) the server supports",
    ),
    (
        ("invalid response to SSL negotiation", "expected authentication request"),
        "is not a Postgres server",
        "expected the port of a Postgres server: something else listens there",
    ),
)
# A connection the server (or something between) ended during the login, without a word: it restarted,
# crashed or failed over, or a pooler in front of it did. libpq may have sent the password already.
_DROPPED = (
    "server closed the connection unexpectedly",
    "connection has been closed unexpectedly",
    "EOF detected",
    "Connection reset by peer",
    "could not receive data from server",
    "could not send data to server",
)
_NOT_RESOLVED = ("resolve host", "translate host name", "Name or service not known", "nodename nor servname")
_PREFIXES = (
    r"^(connection (failed|is bad): )?(connection to server (at .*?, port \d+|on socket .*?) failed: )?"
)


def connect_error(where: str, error: BaseException) -> ShadowlabError:
    """A failed Postgres connect (`error`, psycopg's) to the database shown as `where`."""
    reason = _connect_reason(error)
    for needles, hint in _FULL:
        if any(needle in reason for needle in needles):
            return ServiceUnavailableError(
                f"database at {where} takes no more connections: {reason} ({hint})"
            )
    if any(words in reason for words in PASSING):
        return ServiceUnavailableError(
            f"database unreachable at {where}: {reason} (the server is up but takes no connections now: "
            "try again in a moment)"
        )
    if any(words in reason for words in _DROPPED):
        return ServiceUnavailableError(
            f"database unreachable at {where}: {reason} (the server ended the connection during the login, "
            "as one that restarts or fails over does: try again when it is back)"
        )
    if reason.startswith(("invalid ", 'missing "="')) or type(error).__name__ == "ProgrammingError":
        return ConfigError(
            f"database {where}: {reason} "
            f"({SETTING}: expected libpq's connection parameters, with values they take, after '?')"
        )
    if getattr(getattr(error, "pgconn", None), "needs_password", False):  # libpq's own "no password supplied"
        return ConfigError(f"database {where} refused the login: {reason} ({SETTING}: expected a password)")
    for needles, what, hint in _REFUSALS:
        if any(needle in reason for needle in needles):
            return ConfigError(f"database {where} {what}: {reason} ({SETTING}: {hint})")
    if _answered(error):
        return ConfigError(
            f"database {where} refused the connection: {reason} "
            f"({SETTING}: expected a user, database and options the server accepts)"
        )
    if any(words in reason for words in _NOT_RESOLVED):
        wanted = "a host name that resolves from this machine"
    elif "timeout expired" in reason:  # something listens there and does not answer, or nothing gets through
        wanted = "a running Postgres at that host and port that answers within SHADOWLAB_CONNECT_TIMEOUT_S"
    else:
        wanted = "a running Postgres at that host and port"
    return ServiceUnavailableError(
        f"database unreachable at {where}: {reason} ({SETTING}: expected {wanted})"
    )


def statement_error(where: str, error: BaseException, *, lost: bool) -> ShadowlabError:
    """A statement of the check after connecting to Postgres failed (`lost`: the connection went with it)."""
    reason = _reason(error)
    state = str(getattr(error, "sqlstate", None) or "")
    if lost or _gone(error):
        return ServiceUnavailableError(
            f"database unreachable at {where}: the connection was lost during the check: {reason} "
            "(the server went away: try again when it is back)"
        )
    if state == "42501":
        return ConfigError(
            f"database {where}: the check of its schema was refused: {reason} ({SETTING}: expected a user "
            "that may read shadowlab's tables; their owner grants it with `shadowlab db grant-app ROLE`)"
        )
    trouble = _trouble(state)
    if trouble is not None:
        return ServiceUnavailableError(
            f"database {where}: the server failed the check of its schema: {reason} ({trouble}, then try "
            "again)"
        )
    if state in _UNFINISHED:
        why = _why_unfinished(state, reason, "e.g. a running `shadowlab db upgrade`")
        return ServiceUnavailableError(
            f"database {where}: the check of its schema did not finish: {reason} ({why}: try again when it "
            "ends)"
        )
    return ConfigError(
        f"database {where}: the check of its schema failed: {reason} "
        f"({SETTING}: expected a shadowlab database its user may read)"
    )


def upgrade_error(where: str, error: BaseException, *, lost: bool) -> ShadowlabError | None:
    """`shadowlab db upgrade`'s migration failed on Postgres (`lost`: the connection went with it): a setting
    or a server out of reach; None for any other error (a migration's bug keeps its traceback)."""
    reason, state = _reason(error), str(getattr(error, "sqlstate", None) or "")
    if lost or _gone(error):
        return ServiceUnavailableError(
            f"database unreachable at {where}: the connection was lost during the migration: {reason} (the "
            "server went away: run `shadowlab db upgrade` again when it is back)"
        )
    trouble = _trouble(state)
    if trouble is not None:
        return ServiceUnavailableError(
            f"database {where}: the server failed the migration: {reason} ({trouble}, then run `shadowlab db "
            "upgrade` again)"
        )
    if state in _UNFINISHED:
        why = _why_unfinished(state, reason)
        return ServiceUnavailableError(
            f"database {where}: the migration did not finish: {reason} ({why}: run `shadowlab db upgrade` "
            "again when it ends)"
        )
    wanted = {
        "42501": "the database's owner, or a role that may create tables in its schema (`db upgrade` runs as "
        "the owner; the commands may run as an app role it grants with --grant-app)",
        "25006": "a server that takes writes (not a standby, no default_transaction_read_only=on)",
    }.get(state)
    if wanted is None:
        return None
    return ConfigError(
        f"database {where}: the migration was refused: {reason} ({SETTING}: expected {wanted})"
    )


# SQLSTATEs of a statement that waited past a lock or statement timeout, or lost a deadlock or a race
_UNFINISHED = ("55P03", "57014", "40P01", "40001")


def _why_unfinished(state: str, reason: str, example: str = "") -> str:
    """Why a statement of `_UNFINISHED` ended: a cancel (57014 "due to user request": pg_cancel_backend,
    an administrator or a tool), a deadlock (40P01) or a serialization race (40001) lost is not a timeout."""
    if "user request" in reason:
        return "it was cancelled by another session or an administrator (pg_cancel_backend)"
    held = {
        "40P01": "it lost a deadlock with another session's statements",
        "40001": "it lost a race with another session's transaction",
    }.get(state, "another session held a lock past a lock or statement timeout")
    return f"{held}, {example}" if example else held


# SQLSTATEs (and classes) of a server in trouble, not of a setting the user can fix in the URL: out of a
# resource (53), failing its own files (58), an internal error or corruption (XX); each with what to do.
# 53400 too: the limit reached is one of the server's own configuration (temp_file_limit,
# max_worker_processes, max_replication_slots in postgresql.conf), which its administrator sets, not
# SHADOWLAB_DATABASE_URL, and which the load of other sessions may have used up.
_TROUBLE = {
    "53100": "the server is out of disk space: free some on its data disk",
    "53200": "the server is out of memory: lower its load or work_mem, or give it more (out of shared "
    "memory: raise max_locks_per_transaction)",
    "53300": "all of the server's connections are in use: close idle sessions or raise max_connections",
    "53400": "the server reached a limit of its own configuration: its administrator raises the setting its "
    "message names (e.g. temp_file_limit, max_worker_processes), or wait for the load that used it up to "
    "pass",
    "53": "the server is short of a resource: lower its load or give it more",
    "58": "the server could not use its own files (a disk or file system error): its administrator checks "
    "its log and disks",
    "XX": "the server reports an internal error or corrupted data: its administrator checks its log (REINDEX "
    "a corrupted index, restore corrupted data from a backup)",
}


def _trouble(state: str) -> str | None:
    """What to do about a server in trouble that answered with SQLSTATE `state`; None for any other."""
    if not state:
        return None
    return _TROUBLE.get(state) or _TROUBLE.get(state[:2])


def failed_during_command(error: BaseException, *, lost: bool) -> ShadowlabError | None:
    """A command's Postgres statement failed while it worked because the connection went (`lost`: SQLAlchemy
    saw it go; the server restarted, failed over or ended the session) or the server is in trouble (out of
    disk, memory or connections, an I/O error, corruption). None for any other error (a bug keeps its
    traceback)."""
    if lost or _gone(error):
        return ServiceUnavailableError(
            f"database connection lost during the command: {_reason(error)} ({SETTING}: its server went away "
            "or ended the session; try again when it is back)"
        )
    trouble = _trouble(str(getattr(error, "sqlstate", None) or ""))
    if trouble is None:
        return None
    return ServiceUnavailableError(
        f"database server error during the command: {_reason(error)} ({trouble}, then try again)"
    )


def locked_during_command(error: BaseException) -> ShadowlabError | None:
    """A command's SQLite file stayed locked by another process past the wait while it worked (a long
    transaction of another command); None for any other error."""
    if not str(getattr(error, "sqlite_errorname", None) or "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return None
    return ServiceUnavailableError(
        f"database is locked during the command: another process held its write lock past the wait "
        f"({_ONE_WRITER})"
    )


_ONE_WRITER = (
    "SQLite lets one writer at a time: wait for that process, e.g. another shadowlab command, to end, or use "
    f"Postgres for work that runs at the same time; timeout= in {SETTING} sets the wait in seconds"
)


def _gone(error: BaseException) -> bool:
    """Whether a statement's error says the connection is gone: SQLSTATE class 08, or an admin or crash
    shutdown, or a server that takes no connections now."""
    state = str(getattr(error, "sqlstate", None) or "")
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


def sqlite_error(where: str, error: BaseException, *, wait_s: float) -> ShadowlabError:
    """SQLite could not open or read the file of `where` (after waiting `wait_s` for a lock)."""
    reason = _reason(error)
    code = str(getattr(error, "sqlite_errorname", None) or "")
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in reason:
        return ServiceUnavailableError(
            f"database {where} is locked: another process held its write lock for over {wait_s:g} s "
            f"({_ONE_WRITER})"
        )
    if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in reason:
        wanted = "a shadowlab SQLite file (`shadowlab db upgrade` makes one)"
    elif code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IOERR")):
        wanted = "a SQLite file this user may read and write, in a folder it may write to"
    else:
        wanted = "a SQLite file that can be opened"
    return ConfigError(f"database {where}: {reason} ({SETTING}: expected {wanted})")


def _reason(error: BaseException | str) -> str:
    """The driver's first line, without libpq's prefixes (the URL shown beside it names the server)."""
    lines = str(error).strip().splitlines()
    # re.sub compiles the pattern on first use, not when `analysis.prefetch` imports this module
    first = re.sub(_PREFIXES, "", lines[0]) if lines else ""
    return first.replace("FATAL:  ", "").strip() or type(error).__name__


def _connect_reason(error: BaseException) -> str:
    """`_reason` of a failed connect. psycopg's first line is its last attempt's: where it tried several hosts
    or addresses (a list of them, "- host: …: connection failed: …", follows "Multiple connection attempts
    failed") and a server answered one (a FATAL, or asked for a password that the URL lacks), that answer is
    the reason, not another's "Connection refused" after it."""
    for line in str(error).splitlines():
        if line.startswith("- host: ") and ("FATAL:  " in line or "no password supplied" in line):
            return _reason(line.partition(": connection failed: ")[2])
    return _reason(error)


def _answered(error: BaseException) -> bool:
    """Whether the server answered the connect: libpq sent it a password, or quotes its error."""
    text = str(error)
    return bool(getattr(getattr(error, "pgconn", None), "used_password", False)) or any(
        f"{severity}:  " in text for severity in ("FATAL", "ERROR", "PANIC")
    )
