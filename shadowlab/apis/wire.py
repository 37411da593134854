"""What the wire models of every API share: strict types, unknown fields kept, unions tagged by a callable.

A union tagged by a callable reports one error per bad block, not one per member (tags start with "~";
error paths drop them, see `shadowlab.capture_errors`). Types not modelled validate as `OtherKind`, kept.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

__all__ = ["OtherKind", "StrOrList", "WireModel", "WireRequest", "by_type", "tag_of", "tagged", "type_of"]


class WireModel(BaseModel):
    """A part of a request body as sent: strict types, unknown fields kept."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)


class WireRequest(WireModel):
    """A request body of one API (its module in `shadowlab.apis` says which)."""

    model: str


class OtherKind(WireModel):
    """A block, source, part, tool or tool call of a type this version does not model; kept as given."""

    type: str


def tag_of(read: Callable[[Any], Any], known: frozenset[str], other: str) -> Callable[[Any], str | None]:
    """A union tag: `~<what read returns>` when known, `other` when not, None (refused) for a non-object."""

    def tag(value: Any) -> str | None:
        if isinstance(value, OtherKind):
            return other
        if not isinstance(value, (dict, BaseModel)):
            return None
        kind = read(value)  # anything a sender wrote: a list or an object is not hashable, and no known tag
        return f"~{kind}" if isinstance(kind, str) and kind in known else other

    return tag


def type_of(value: Any) -> Any:
    """The `type` of a dict or a model."""
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


def _str_or_list_tag(value: Any) -> str | None:
    return "~str" if isinstance(value, str) else "~list" if isinstance(value, list | tuple) else None


def tagged(what: str, tag: Callable[[Any], str | None]) -> Discriminator:
    """A callable discriminator whose one error says `Input should be <what>` (code `wrong_type`)."""
    return Discriminator(tag, custom_error_type="wrong_type", custom_error_message=f"Input should be {what}")


_T = TypeVar("_T")
StrOrList = Annotated[
    Annotated[str, Tag("~str")] | Annotated[list[_T], Tag("~list")],
    tagged("a string or a list", _str_or_list_tag),
]


def by_type(expected: str, *known: str, other: str = "~other") -> Discriminator:
    """A discriminator on the `type` field: `known` types by name, any other one as `other`."""
    return tagged(expected, tag_of(type_of, frozenset(known), other))
