"""What segments cut on, per captured request: its facts (`RequestFacts`), dictionary-encoded (`FactTable`).

Light on purpose (numpy only): the load places the requests' facts on a thread of its own while the command
imports the statistics (`analysis.load_start.LoadStart.requests`), so nothing the facts need may wait for
them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
PROMPT_CHAR_EDGES = (0, 200, 1000, 4000)


def dense_codes(labels: IntArray) -> tuple[IntArray, int]:
    """Dense codes 0..G−1 and G: `analysis.stats.clustering.factorise`, which this module may not import
    (importing `analysis.stats` imports all the statistics and scipy). Small non-negative labels are counted
    in O(n) instead of sorted."""
    if labels.size and labels.dtype.kind in "iu" and labels.min() >= 0 and labels.max() < 4 * labels.size:
        present = np.bincount(labels) > 0
        dense = np.cumsum(present) - 1
        return dense[labels].astype(np.int64), int(dense[-1]) + 1
    uniques, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), int(uniques.size)


@dataclass(frozen=True)
class RequestFacts:
    """What the segment labels are built from, for one captured request."""

    service: str
    route: str | None
    tags: Mapping[str, Any]
    prompt_chars: int
    turn: int


@dataclass(frozen=True)
class FactTable:
    """Segment facts of every request, dictionary-encoded: the distinct facts (in the order requests first
    show them) and, per request, the index of its facts."""

    distinct: tuple[RequestFacts, ...]
    codes: IntArray

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def of(cls, facts: Sequence[RequestFacts]) -> FactTable:
        """Encode one RequestFacts per request."""
        index: dict[tuple[Any, ...], int] = {}
        distinct: list[RequestFacts] = []
        codes = np.empty(len(facts), dtype=np.int64)
        for i, f in enumerate(facts):
            key = (f.service, f.route, tuple(sorted((k, repr(v)) for k, v in f.tags.items())),
                   f.prompt_chars, f.turn)  # fmt: skip
            if key not in index:
                index[key] = len(distinct)
                distinct.append(f)
            codes[i] = index[key]
        return cls(tuple(distinct), codes)
