"""Run Alembic from the installed package: no alembic.ini needed, works from a wheel."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from shadowlab.errors import ConfigError


class NotMigratedError(ConfigError):
    """The database's schema is not the one this code was written for (none, older or newer)."""


def _location() -> str:
    return str(files("migrations"))


def scripts() -> ScriptDirectory:
    """The shipped `migrations` folder's revisions."""
    return ScriptDirectory(_location())


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at the shipped `migrations` folder, bound to `engine`."""
    config = Config()
    config.set_main_option("script_location", _location())
    config.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def _run(engine: Engine, action: Any, *args: Any) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        action(config, *args)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, command.downgrade, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    return scripts().get_current_head()


def check_revision(conn: Connection, where: str) -> str:
    """The database's revision when it is the code's head; else a `NotMigratedError` saying what to run."""
    script = scripts()
    head = script.get_current_head()
    current = MigrationContext.configure(conn).get_current_revision()
    if current == head and current is not None:
        return current
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        raise NotMigratedError(
            f"database {where}: revision {current} is newer than this shadowlab knows (its head is {head}): "
            "upgrade shadowlab"
        )
    raise NotMigratedError(
        f"database {where}: not migrated (revision {current or 'none'}, expected {head}): "
        "run `shadowlab db upgrade`"
    )
