"""Effects per segment: every metric × candidate within each segment of each dimension, BH-adjusted.

Pure (arrays and labels in, frozen dataclasses out). A segment with fewer than `min_n` complete pairs for a
metric is reported as `too_small` (no test, not ranked, never routed). Benjamini–Hochberg runs across all
tested segments (every dimension) within each metric × candidate: segments are exploratory (DESIGN §7).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack

import numpy as np

from analysis.analyze import Comparison
from analysis.csv_input import ExperimentTable, IntArray
from analysis.facts import PROMPT_CHAR_EDGES, FactTable, RequestFacts
from analysis.forked import Forked
from analysis.segment_comparisons import arm_pair, segment_comparisons, segment_pairs
from analysis.stats import adjust_p_values
from analysis.stats.grouped import Grouping
from analysis.stats.results import MetricComparison

SegmentStatus = Literal["tested", "too_small"]
DEFAULT_MIN_N = 30
NO_VALUE = "(none)"
# A predicate maps a request field to a value (equality; None = field absent) or a {min, max} range
# (min inclusive, max exclusive); fields: service, route, tags.<key>, prompt_chars, turn.
Condition = str | None | Mapping[str, float]
Predicate = Mapping[str, Condition]
LANGUAGE_TAGS = ("language", "lang", "locale")
MAX_TAG_VALUES = 20


class SegmentError(Exception):
    """Segment labels do not fit the table; the message names the dimension and what was expected."""


@dataclass(frozen=True)
class SegmentDimension:
    """One way of cutting the traffic, dictionary-encoded: the segments (sorted labels), per request the
    index of its segment, and the predicate each label stands for."""

    name: str
    segments: tuple[str, ...]
    codes: IntArray
    predicates: Mapping[str, Predicate]

    @classmethod
    def from_labels(
        cls, name: str, labels: Sequence[str], predicates: Mapping[str, Predicate]
    ) -> SegmentDimension:
        """A dimension from one label per request."""
        segments = tuple(sorted(set(labels)))
        index = {label: i for i, label in enumerate(segments)}
        codes = np.fromiter(map(index.__getitem__, labels), dtype=np.int64, count=len(labels))
        return cls(name, segments, codes, predicates)

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per request (materialised: for small tables and tests)."""
        return tuple(np.array(self.segments, dtype=object)[self.codes]) if self.segments else ()

    def counts(self) -> IntArray:
        """Requests per segment, in the order of `segments`."""
        return np.bincount(self.codes, minlength=len(self.segments)).astype(np.int64)

    def present(self) -> tuple[tuple[int, str, int], ...]:
        """(index, label, requests) of every segment with at least one request, in label order."""
        counts = self.counts()
        return tuple((i, label, int(counts[i])) for i, label in enumerate(self.segments) if counts[i])

    def subset(self, rows: np.ndarray[Any, np.dtype[np.bool_]]) -> SegmentDimension:
        """The dimension restricted to the rows where `rows` is true (the same segments)."""
        return replace(self, codes=self.codes[rows])


@dataclass(frozen=True)
class SegmentEffect:
    """One metric × candidate inside one segment; `comparison` is None when the segment is too small."""

    dimension: str
    segment: str
    n_requests: int
    metric: str
    candidate: str
    n: int
    status: SegmentStatus
    comparison: Comparison | None
    p_adjusted: float | None = None


def _range_label(low: float, high: float | None, unit: str) -> str:
    return f"{unit} {int(low)}+" if high is None else f"{unit} {int(low)}-{int(high) - 1}"


def _bucket(value: int, edges: Sequence[int]) -> tuple[str, Mapping[str, float]]:
    index = max(i for i, edge in enumerate(edges) if value >= edge)
    high = edges[index + 1] if index + 1 < len(edges) else None
    bounds: dict[str, float] = {"min": float(edges[index])}
    if high is not None:
        bounds["max"] = float(high)
    return _range_label(edges[index], high, "chars"), bounds


def _turn(turn: int) -> tuple[str, Mapping[str, float]]:
    if turn >= 3:
        return "turn 3+", {"min": 3.0}
    return f"turn {turn}", {"min": float(turn), "max": float(turn + 1)}


def segment_dimensions(facts: FactTable | Sequence[RequestFacts]) -> tuple[SegmentDimension, ...]:
    """service, route (service/route), each low-cardinality tag (`language` for a language tag),
    prompt length bucket (characters) and conversation turn. Labels are computed once per distinct facts
    and spread to the requests by their codes."""
    table = facts if isinstance(facts, FactTable) else FactTable.of(facts)
    distinct = table.distinct
    # per dimension: the label of each distinct facts, and the predicate of each label (the first seen)
    dims: dict[str, tuple[list[str], dict[str, Predicate]]] = {}

    def put(dim: str, label: str, predicate: Predicate) -> None:
        labels, predicates = dims.setdefault(dim, ([], {}))
        labels.append(label)
        predicates.setdefault(label, predicate)

    tag_keys = sorted({k for f in distinct for k, v in f.tags.items() if isinstance(v, str | int | bool)})
    usable = [k for k in tag_keys if len({str(f.tags.get(k, NO_VALUE)) for f in distinct}) <= MAX_TAG_VALUES]
    for f in distinct:
        put("service", f.service, {"service": f.service})
        route = f.route if f.route else NO_VALUE
        put("route", f"{f.service}/{route}", {"service": f.service, "route": f.route})
        for key in usable:
            value = f.tags.get(key)
            name = "language" if key.lower() in LANGUAGE_TAGS else f"tag:{key}"
            put(name, NO_VALUE if value is None else str(value),
                {f"tags.{key}": None if value is None else str(value)})  # fmt: skip
        label, bounds = _bucket(f.prompt_chars, PROMPT_CHAR_EDGES)
        put("prompt_length", label, {"prompt_chars": bounds})
        label, bounds = _turn(f.turn)
        put("turn", label, {"turn": bounds})
    out = []
    for name, (labels, predicates) in dims.items():
        segments = tuple(sorted(set(labels)))
        index = {label: i for i, label in enumerate(segments)}
        of_distinct = np.array([index[label] for label in labels], dtype=np.int64)
        out.append(SegmentDimension(name, segments, of_distinct[table.codes], predicates))
    return tuple(out)


def subset_rows(table: ExperimentTable, rows: np.ndarray[Any, np.dtype[np.bool_]]) -> ExperimentTable:
    """The table restricted to the rows where `rows` is true."""
    kept = np.flatnonzero(rows).tolist()
    return ExperimentTable(
        tuple(map(table.request_ids.__getitem__, kept)),
        table.arms,
        tuple(replace(m, values=m.values[rows]) for m in table.metrics),
        None if table.clusters is None else table.clusters[rows],
        None if table.covariate is None else table.covariate[rows],
    )


class SegmentOptions(TypedDict, total=False):
    """`segment_effects`' optional settings (`SegmentEffectsRun` takes the same)."""

    aa_arm: str | None
    min_n: int
    quantile_metrics: Mapping[str, Collection[str]] | None
    failure_latency_ms: float | None


def segment_effects(
    table: ExperimentTable,
    dimensions: Sequence[SegmentDimension],
    *,
    control: str,
    alpha: float,
    **options: Unpack[SegmentOptions],
) -> tuple[SegmentEffect, ...]:
    """Every metric × candidate in every segment; BH across segments within each metric × candidate; a failed
    replay counts at `failure_latency_ms` (the replay timeout) in latency ratios, as in `analyze_table`.

    All segments of a dimension are compared at once from sufficient statistics (`segment_comparisons`).
    Latency quantile differences (row-level sorts) only where `quantile_metrics` asks, by dimension name:
    routing's quantile guardrails (ttft_p95) on the dimension it routes on.
    """
    with SegmentEffectsRun(table, dimensions, control=control, alpha=alpha, **options) as run:
        return run.effects()


class SegmentEffectsRun:
    """`segment_effects`, started: with `fork`, a forked child (`analysis.forked`) computes the first
    `FORKED_SHARE` of the dimensions at once, while the caller does other work; `effects()` computes the
    rest here and joins them (the same effects, in the same order, as computed in one process). A context
    manager: leaving it without `effects()` stops the child."""

    FORKED_SHARE = 0.8  # the parent also has the rest of the analysis to do meanwhile

    def __init__(
        self,
        table: ExperimentTable,
        dimensions: Sequence[SegmentDimension],
        *,
        control: str,
        alpha: float,
        aa_arm: str | None = None,
        min_n: int = DEFAULT_MIN_N,
        quantile_metrics: Mapping[str, Collection[str]] | None = None,
        failure_latency_ms: float | None = None,
        fork: bool = False,
    ) -> None:
        if min_n < 2:
            raise SegmentError(f"min_n: expected at least 2 pairs, found {min_n}")
        n = len(table.request_ids)
        for dim in dimensions:
            if len(dim.codes) != n:
                raise SegmentError(f"dimension {dim.name!r}: expected {n} labels (one per request), "
                                   f"found {len(dim.codes)}")  # fmt: skip
        self._table, self._control, self._alpha, self._min_n = table, control, alpha, min_n
        self._quantiles, self._failure_latency_ms = quantile_metrics or {}, failure_latency_ms
        self._candidates = [a for a in table.arms if a not in (control, aa_arm)]
        self._pairs = {
            (m.name, c): arm_pair(table, m, control, c) for m in table.metrics for c in self._candidates
        }
        split = math.ceil(len(dimensions) * self.FORKED_SHARE) if fork and len(dimensions) > 1 else 0
        self.dimensions = tuple(dimensions)
        there, self._here = list(dimensions[:split]), list(dimensions[split:])
        self._there = Forked(partial(self._of, there), fork=bool(there))

    @property
    def forked(self) -> bool:
        """Whether a child process computes some of the dimensions."""
        return self._there.forked

    def effects(self) -> tuple[SegmentEffect, ...]:
        """Every segment's effects, BH-adjusted (waits for the child)."""
        here = self._of(self._here)
        return _adjust_bh([*self._there.result(), *here])

    def _of(self, dimensions: Sequence[SegmentDimension]) -> list[SegmentEffect]:
        return [effect for dim in dimensions for effect in self._dimension(dim)]

    def _dimension(self, dim: SegmentDimension) -> list[SegmentEffect]:
        table = self._table
        grouping = Grouping.of(dim.codes, len(dim.segments), table.clusters)
        present = dim.present()
        with_quantiles = self._quantiles.get(dim.name, ())
        found: dict[tuple[str, str], tuple[IntArray, dict[int, MetricComparison]]] = {}
        for key, pair in self._pairs.items():
            counts = segment_pairs(pair, grouping)
            wanted = [code for code, _, _ in present if counts[code] >= self._min_n]
            found[key] = counts, segment_comparisons(
                pair, grouping, alpha=self._alpha, wanted=wanted,
                quantile_clusters=table.clusters if key[0] in with_quantiles else False,
                failure_latency_ms=self._failure_latency_ms,
            )  # fmt: skip
        effects = []
        for code, value, size in present:
            for metric in table.metrics:
                for cand in self._candidates:
                    counts, results = found[metric.name, cand]
                    result = results.get(code)
                    comparison = (
                        None if result is None else Comparison(metric.name, self._control, cand, result, None)
                    )
                    status: SegmentStatus = "too_small" if result is None else "tested"
                    effects.append(SegmentEffect(
                        dim.name, value, size, metric.name, cand, int(counts[code]), status, comparison
                    ))  # fmt: skip
        return effects

    def __enter__(self) -> SegmentEffectsRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._there.close()


def _adjust_bh(effects: list[SegmentEffect]) -> tuple[SegmentEffect, ...]:
    out = list(effects)
    families: dict[tuple[str, str], list[int]] = {}
    for i, e in enumerate(effects):
        if e.comparison is not None:
            families.setdefault((e.metric, e.candidate), []).append(i)
    for members in families.values():
        ps = [_p(effects[i]) for i in members]
        for i, p in zip(members, adjust_p_values(ps, "bh"), strict=True):
            comparison = effects[i].comparison
            assert comparison is not None
            out[i] = replace(effects[i], comparison=replace(comparison, p_adjusted=p), p_adjusted=p)
    return tuple(out)


def _p(effect: SegmentEffect) -> float | None:
    p = None if effect.comparison is None else effect.comparison.result.primary.p_value
    return p if p is not None and math.isfinite(p) else None


def segment_json(effect: SegmentEffect) -> dict[str, Any]:
    """One row of the snapshot's `segments` list (flat, for tables)."""
    row: dict[str, Any] = {
        "dimension": effect.dimension, "segment": effect.segment, "metric": effect.metric,
        "candidate": effect.candidate, "n_requests": effect.n_requests, "n": effect.n,
        "status": effect.status, "estimate": None, "ci_low": None, "ci_high": None, "p_value": None,
        "p_adjusted": _finite(effect.p_adjusted), "null_value": None, "kind": None,
    }  # fmt: skip
    if effect.comparison is not None:
        result = effect.comparison.result
        row.update(
            kind=result.kind,
            estimate=_finite(result.primary.estimate),
            ci_low=_finite(result.primary.ci_low),
            ci_high=_finite(result.primary.ci_high),
            p_value=_finite(result.primary.p_value),
            null_value=result.primary.null_value,
        )
    return row


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
