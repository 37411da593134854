"""Load and validate the long CSV of `shadowlab analyze --from-csv` into per-metric request × arm matrices.

Rows are numbered as a spreadsheet shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from analysis.stats.results import METRIC_KINDS, MetricKind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

REQUIRED = ("request_id", "arm")
CLUSTER_COLUMN = "conversation_id"
FINGERPRINT_COLUMN = "prompt_fingerprint"
CLUSTER_DIMENSIONS = (CLUSTER_COLUMN, FINGERPRINT_COLUMN)  # the columns of a two-way `clusters` array
COVARIATE_COLUMN = "covariate"
ERROR_COLUMN = "error"
RESERVED = (*REQUIRED, *CLUSTER_DIMENSIONS, COVARIATE_COLUMN)


class CsvInputError(Exception):
    """The CSV cannot be analysed; the message names the row and column and what was expected."""


@dataclass(frozen=True)
class MetricColumn:
    """One metric: values[request, arm]; NaN = missing, +inf = failed request (latency only)."""

    name: str
    kind: MetricKind
    values: FloatArray


@dataclass(frozen=True)
class ExperimentTable:
    """The validated CSV, one row per request and one column per arm.

    `clusters`: None, one label per request (1-D: conversation), or (requests × 2) labels (conversation,
    prompt fingerprint: `CLUSTER_DIMENSIONS`) for two-way cluster-robust standard errors."""

    request_ids: tuple[str, ...]
    arms: tuple[str, ...]
    metrics: tuple[MetricColumn, ...]
    clusters: IntArray | None
    covariate: FloatArray | None

    @property
    def cluster_dimensions(self) -> tuple[str, ...]:
        """Names of the columns of `clusters`."""
        if self.clusters is None:
            return ()
        return CLUSTER_DIMENSIONS if self.clusters.ndim == 2 else (CLUSTER_COLUMN,)


def parse_metric_specs(specs: Sequence[str]) -> dict[str, MetricKind | None]:
    """`NAME=KIND` or `NAME` (kind inferred) → {name: kind}."""
    parsed: dict[str, MetricKind | None] = {}
    for spec in specs:
        name, _, kind = spec.partition("=")
        name, kind = name.strip(), kind.strip()
        if not name:
            raise CsvInputError(f"--metric {spec!r}: expected NAME=KIND, found no name")
        if kind and kind not in METRIC_KINDS:
            raise CsvInputError(
                f"--metric {spec!r}: KIND must be one of {', '.join(METRIC_KINDS)}, found {kind!r}"
            )
        parsed[name] = next((k for k in METRIC_KINDS if k == kind), None)
    return parsed


Cells = Sequence[str] | FloatArray


def _text(cells: Cells, row: int) -> str:
    cell = cells[row]
    return cell if isinstance(cell, str) else f"{float(cell):g}"


def _strings(columns: dict[str, Cells], name: str) -> list[str]:
    """A column read as text (identifier columns are always read as text)."""
    cells = columns[name]
    return [_text(cells, i) for i in range(len(cells))] if isinstance(cells, np.ndarray) else list(cells)


def _where(row_index: int, column: str) -> str:
    return f"row {row_index + 2}, column {column}"


def _codes(values: Sequence[str], column: str) -> tuple[IntArray, list[str]]:
    """Factorise strings in first-seen order; empty cells are an error."""
    uniques = list(dict.fromkeys(values))
    index = {value: i for i, value in enumerate(uniques)}
    codes = np.fromiter(map(index.__getitem__, values), dtype=np.int64, count=len(values))
    if "" in index:
        row = list(values).index("")
        raise CsvInputError(f"{_where(row, column)}: expected a non-empty value, found an empty cell")
    return codes, uniques


def _to_float(cell: str) -> float:
    return float(cell) if cell else math.nan


def _numbers(cells: Cells, column: str) -> FloatArray:
    """Parse a column to floats, NaN for empty cells; names the first bad cell."""
    if isinstance(cells, np.ndarray):
        return cells  # parsed by pyarrow, which already told empty cells from "nan" (see _read_arrow)
    try:
        out = np.fromiter(map(_to_float, cells), dtype=np.float64, count=len(cells))
    except ValueError:
        for row, cell in enumerate(cells):
            try:
                _to_float(cell)
            except ValueError:
                raise CsvInputError(f"{_where(row, column)}: expected a number, found {cell!r}") from None
        raise
    nan = np.isnan(out)
    if int(nan.sum()) != list(cells).count(""):
        row = next(i for i, cell in enumerate(cells) if cell and math.isnan(_to_float(cell)))
        raise CsvInputError(f"{_where(row, column)}: expected a number, found {cells[row]!r}")
    return out


def _infer_kind(name: str, values: FloatArray) -> MetricKind:
    present = values[~np.isnan(values)]
    if present.size and np.isin(present, (0.0, 1.0)).all():
        return "binary"
    if name.endswith("_ms"):
        return "latency"
    return "cost" if name == "cost_usd" else "mean"


def _check_kind(name: str, kind: MetricKind, values: FloatArray, cells: Cells) -> None:
    present = ~np.isnan(values)
    if kind == "binary":
        bad, expected = present & (values != 0.0) & (values != 1.0), "0 or 1"
    elif kind == "latency":
        bad, expected = present & ~(values > 0.0), "a positive number of milliseconds, or inf for a failure"
    elif kind == "preference":
        bad, expected = present & ~((values >= 0.0) & (values <= 1.0)), "a preference between 0 and 1"
    else:
        bad, expected = present & ~np.isfinite(values), "a finite number"
    if bad.any():
        row = int(np.argmax(bad))
        raise CsvInputError(f"{_where(row, name)}: expected {expected}, found {_text(cells, row)!r}")


def _per_request(codes: IntArray, requests: IntArray, n_requests: int, column: str, values: Cells) -> None:
    """A per-request column must agree across the arms of one request."""
    first = np.full(n_requests, -1, dtype=np.int64)
    first[requests[::-1]] = codes[::-1]
    mismatch = first[requests] != codes
    if mismatch.any():
        row = int(np.argmax(mismatch))
        raise CsvInputError(
            f"{_where(row, column)}: expected one value per request, found {_text(values, row)!r}"
        )


def _cluster_codes(columns: dict[str, Cells], name: str, requests: IntArray, n_requests: int) -> IntArray:
    """One cluster label per request from column `name`; an empty cell (or no column) is a cluster of its
    own request."""
    ids = _strings(columns, "request_id")
    cells = _strings(columns, name) if name in columns else [""] * len(ids)
    index: dict[str, int] = {}
    row_codes = np.fromiter(
        (index.setdefault(c if c else f"\x00{r}", len(index)) for c, r in zip(cells, ids, strict=True)),
        dtype=np.int64,
        count=len(cells),
    )
    _per_request(row_codes, requests, n_requests, name, cells)
    codes = np.empty(n_requests, dtype=np.int64)
    codes[requests] = row_codes
    return codes


def _read_arrow(path: Path) -> tuple[list[str], dict[str, Cells]] | None:
    """Fast path with pyarrow's C++ CSV reader; None when pyarrow is missing or the file is irregular."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:
        return None
    text_columns = {name: pa.string() for name in (*REQUIRED, *CLUSTER_DIMENSIONS)}
    options = pa_csv.ConvertOptions(column_types=text_columns, null_values=[""], strings_can_be_null=True)
    try:
        table = pa_csv.read_csv(path, convert_options=options)
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError):
        return None  # the Python reader reports the exact row and column
    header = [name.strip() for name in table.column_names]
    columns: dict[str, Cells] = {}
    for name, column in zip(header, table.columns, strict=True):
        if (
            pa.types.is_integer(column.type)
            or pa.types.is_floating(column.type)
            or pa.types.is_null(column.type)
        ):
            values = column.to_numpy(zero_copy_only=False).astype(np.float64)
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            if (np.isnan(values) & ~nulls).any():
                return None  # a literal "nan" cell: let the Python reader name it
            columns[name] = values
        else:
            columns[name] = ["" if v is None else str(v) for v in column.to_pylist()]
    return header, columns


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CsvInputError(f"row 1: cannot read {path}: {exc}") from None
    if '"' in text:
        try:
            records = list(csv.reader(text.splitlines()))
        except csv.Error as exc:
            raise CsvInputError(f"row 1: malformed CSV: {exc}") from None
    else:
        # Fast path: without quotes a CSV line is its comma-separated cells (3× faster than csv.reader).
        records = [line.split(",") for line in text.splitlines()]
    if not records:
        raise CsvInputError("row 1: the file is empty; expected a header with request_id, arm and metrics")
    header, rows = records[0], records[1:]
    return [name.strip() for name in header], rows


def _check_widths(header: list[str], rows: list[list[str]]) -> None:
    for i, row in enumerate(rows):
        if len(row) != len(header):
            column = header[len(row)] if len(row) < len(header) else f"#{len(row) + 1}"
            raise CsvInputError(
                f"{_where(i, column)}: expected {len(header)} cells as in the header, found {len(row)}"
            )


def load_experiment_csv(
    path: Path, *, control: str, metric_specs: Sequence[str] = (), known_arms: Sequence[str] | None = None
) -> ExperimentTable:
    """Read and validate the CSV; raise CsvInputError naming the row and column of the first problem."""
    specs = parse_metric_specs(metric_specs)
    fast = _read_arrow(path)
    rows: list[list[str]] = []
    if fast is None:
        header, rows = _read_rows(path)
    else:
        header, columns = fast
    for name in REQUIRED:
        if name not in header:
            raise CsvInputError(f"row 1, column {name}: required column is missing from the header")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise CsvInputError(f"row 1, column {name}: the column name appears twice in the header")
        seen.add(name)
    for name in specs:
        if name not in header or name in RESERVED:
            raise CsvInputError(f"row 1, column {name}: --metric names a column the header does not have")
    if fast is None:
        _check_widths(header, rows)
        columns = (
            dict(zip(header, (list(c) for c in zip(*rows, strict=True)), strict=True))
            if rows
            else {name: [] for name in header}
        )
    n_rows = len(columns["request_id"])
    requests, request_ids = _codes(_strings(columns, "request_id"), "request_id")
    arm_codes, arms = _codes(_strings(columns, "arm"), "arm")
    if control not in arms:
        raise CsvInputError(
            f"rows 2-{n_rows + 1}, column arm: control arm {control!r} does not appear; "
            f"arms found: {', '.join(arms) or 'none'}"
        )
    if known_arms is not None:
        for arm in arms:
            if arm not in known_arms:
                row = _strings(columns, "arm").index(arm)
                raise CsvInputError(
                    f"{_where(row, 'arm')}: unknown arm {arm!r}; the plan names {', '.join(known_arms)}"
                )
    n_requests, n_arms = len(request_ids), len(arms)
    keys = requests * n_arms + arm_codes
    counts = np.bincount(keys, minlength=n_requests * n_arms)
    if (counts > 1).any():
        duplicated = counts[keys] > 1
        key = keys[int(np.argmax(duplicated))]
        first, second = (int(i) for i in np.flatnonzero(keys == key)[:2])
        raise CsvInputError(
            f"{_where(second, 'request_id')}: duplicate request_id {request_ids[requests[second]]!r} for arm "
            f"{arms[arm_codes[second]]!r} (first at row {first + 2})"
        )
    metrics = []
    failed = None
    if ERROR_COLUMN in columns:
        errors = _numbers(columns[ERROR_COLUMN], ERROR_COLUMN)
        failed = errors == 1.0
    for name in header:
        if name in RESERVED:
            continue
        cells = columns[name]
        values = _numbers(cells, name)
        kind = specs.get(name) or _infer_kind(name, values)
        _check_kind(name, kind, values, cells)
        if kind == "latency" and failed is not None:
            values = np.where(failed, np.inf, values)
        matrix = np.full((n_requests, n_arms), np.nan)
        matrix[requests, arm_codes] = values
        metrics.append(MetricColumn(name, kind, matrix))
    clusters = None
    if any(name in columns for name in CLUSTER_DIMENSIONS):
        # With a fingerprint column the table is two-way; without a conversation column then, every
        # request is a conversation of its own.
        dimensions = CLUSTER_DIMENSIONS if FINGERPRINT_COLUMN in columns else (CLUSTER_COLUMN,)
        codes = [_cluster_codes(columns, name, requests, n_requests) for name in dimensions]
        clusters = np.column_stack(codes) if len(codes) == 2 else codes[0]
    covariate = None
    if COVARIATE_COLUMN in columns:
        cells = columns[COVARIATE_COLUMN]
        values = _numbers(cells, COVARIATE_COLUMN)
        if np.isnan(values).any() or not np.isfinite(values).all():
            row = int(np.argmax(~np.isfinite(values)))
            raise CsvInputError(
                f"{_where(row, COVARIATE_COLUMN)}: expected a finite number, found {_text(cells, row)!r}"
            )
        _, value_codes = np.unique(values, return_inverse=True)
        _per_request(value_codes.astype(np.int64), requests, n_requests, COVARIATE_COLUMN, cells)
        covariate = np.empty(n_requests)
        covariate[requests] = values
    if not metrics:
        raise CsvInputError(
            "row 1: no metric columns; expected at least one column besides " + ", ".join(RESERVED)
        )
    return ExperimentTable(tuple(request_ids), tuple(arms), tuple(metrics), clusters, covariate)
