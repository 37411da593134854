"""Errors every stage shares. Each says what was expected and what was found, in one line."""

from __future__ import annotations


class ShadowlabError(Exception):
    """Base class: the CLI prints these as one line (no traceback) and exits non-zero."""

    exit_code: int = 1


class ConfigError(ShadowlabError):
    """A setting is malformed (bad URL, wrong type); the message names the setting."""

    exit_code = 2


class ServiceUnavailableError(ShadowlabError):
    """A configured service (database, Kafka) cannot be reached."""

    exit_code = 3


class NotFoundError(ShadowlabError, LookupError):
    """A row the caller named (an experiment, a snapshot, ...) is not in the database."""

    exit_code = 2


def yaml_problem(exc: Exception) -> str:
    """A YAML parser's error in one line, what it found and where (its own message spans several lines and
    quotes the text with a caret under it)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())
