"""Metrics: effects with intervals (forest plots), latency ECDFs, quantile differences, cost by token."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, data
from dashboard.queries import ArmTokens, LatencyColumn
from dashboard.snapshot import SnapshotView
from dashboard.views.common import PageContext, require_experiment, require_snapshot, run_page, title

_PRICE_KEYS = {
    "input_tokens": "input_cost_per_token",
    "cache_creation_input_tokens": "cache_creation_input_token_cost",
    "cache_read_input_tokens": "cache_read_input_token_cost",
    "output_tokens": "output_cost_per_token",
    "reasoning_tokens": "output_cost_per_reasoning_token",
}


def effects_frame(snap: SnapshotView) -> pd.DataFrame:
    columns = [
        "metric",
        "kind",
        "candidate",
        "n",
        "estimate",
        "ci_low",
        "ci_high",
        "p_value",
        "p_adjusted",
        "test",
    ]
    return pd.DataFrame(
        [{col: getattr(c, col) for col in columns} for c in snap.comparisons], columns=columns
    )


def quantiles_frame(snap: SnapshotView) -> pd.DataFrame:
    columns = ["metric", "candidate", "quantile", "control ms", "candidate ms", "difference ms", "ci_low",
               "ci_high", "p_value", "note"]  # fmt: skip
    rows = [
        [
            c.metric,
            c.candidate,
            f"p{100 * q.quantile:g}",
            q.control,
            q.candidate,
            q.estimate,
            q.ci_low,
            q.ci_high,
            q.p_value,
            "" if q.supported else f"not reported: {q.reason}",
        ]  # fmt: skip
        for c in snap.comparisons
        for q in c.quantiles
    ]
    return pd.DataFrame(rows, columns=columns)


def cost_frame(arms: tuple[ArmTokens, ...], prices: dict[str, object]) -> pd.DataFrame:
    """Tokens and USD by token class per arm (base rates of the experiment's price snapshot)."""
    rows = []
    for arm in arms:
        price = prices.get(arm.model)
        rates = price if isinstance(price, dict) else {}
        for token_class, tokens in arm.tokens:
            rate = rates.get(_PRICE_KEYS[token_class])
            if token_class in ("cache_creation_input_tokens", "cache_read_input_tokens") and rate is None:
                rate = rates.get("input_cost_per_token")
            rows.append(
                {
                    "arm": arm.arm,
                    "token_class": token_class.removesuffix("_tokens").replace("_", " "),
                    "tokens": tokens,
                    "usd": tokens * float(rate) if isinstance(rate, int | float) else None,
                }
            )
    return pd.DataFrame(rows, columns=["arm", "token_class", "tokens", "usd"])


def render(ctx: PageContext) -> None:
    experiment = require_experiment(ctx)
    title("Metrics", experiment)
    snap = require_snapshot(ctx, experiment)

    st.subheader("Effects with confidence intervals", anchor=False)
    if not snap.comparisons:
        st.info("The analysis has no comparisons yet (no metric with complete pairs).")
    for kind in dict.fromkeys(c.kind for c in snap.comparisons):
        group = [c for c in snap.comparisons if c.kind == kind]
        st.altair_chart(charts.forest_plot(group, kind), width="stretch")
    st.dataframe(effects_frame(snap), hide_index=True)

    st.subheader("Latency", anchor=False)
    timings: tuple[tuple[LatencyColumn, str], ...] = (
        ("ttft_ms", "Time to first token"),
        ("latency_ms", "Latency"),
    )
    ecdfs = data.latency_quantiles(ctx.database_url, experiment.id, experiment.replays)
    if experiment.replays > data.ECDF_SAMPLE_ROWS:
        st.caption(f"ECDFs from a fixed random sample of about {data.ECDF_SAMPLE_ROWS:,} replays.")
    for column, label in timings:
        quantiles = ecdfs[column]
        if quantiles:
            st.altair_chart(charts.ecdf_chart(quantiles, data.ECDF_GRID, label), width="stretch")
        else:
            st.info(f"{label}: no successful replays with this timing yet.")
    qframe = quantiles_frame(snap)
    if not qframe.empty:
        st.caption("Quantile differences (failures count as +∞ here only)")
        st.dataframe(qframe, hide_index=True)

    st.subheader("Cost by token class", anchor=False)
    arms = data.tokens_by_arm(ctx.database_url, experiment.id)
    cframe = cost_frame(arms, data.price_snapshot(ctx.database_url, experiment.id))
    if cframe.empty:
        st.info("No replays yet, so no tokens or cost.")
        return
    if cframe["usd"].notna().any():
        st.altair_chart(charts.cost_bars(cframe.dropna(subset=["usd"])), width="stretch")
    st.dataframe(cframe, hide_index=True)
    st.text(
        "Recorded cost per arm: "
        + "; ".join(f"{a.arm}: ${a.cost_usd:,.4f} over {a.replays:,} replays" for a in arms)
    )


if __name__ == "__main__":
    run_page(render)
