"""The words a product manager meets on the dashboard and in the report, in plain language.

One place for them, so the Glossary page, the tooltips (`help=`) and the report say the same thing. Names
of metrics and checks come from `analysis.display` and `analysis.summary`, so a word here is the word a page
shows (a judge's metric carries the judge's name: the demo's is "Quality").
"""

from __future__ import annotations

from collections.abc import Iterable

from analysis.display import metric_name

PREFERRED = metric_name("pref_preference")  # what a pairwise judge's metric is called on every page
TERMS: dict[str, str] = {
    "Verdict": "What the analysis recommends: Ship (switch to the candidate), Don't ship, Keep running (not "
    "enough data yet), Inconclusive (the planned sample is used up without a clear answer) or Invalid (the "
    "data cannot support a decision; fix the setup first).",
    "Control and candidate": "The control is the model (or prompt) in production today; a candidate is an "
    "alternative answering the same captured prompts, so the two are compared prompt by prompt.",
    "Goal": "The metric the plan wants to improve (often cost). A candidate ships only if the goal clearly "
    "improves.",
    "Guardrail": "A metric that must not get worse by more than an allowed amount (the margin), e.g. quality "
    "may drop at most 0.5 points. A guardrail passes when the whole interval stays within the margin.",
    "Margin": "How much worse a guardrail may get and still ship (the plan's 'allowed' column). Metrics the "
    "plan does not name get a practical margin: they block only when clearly worse than it.",
    "Interval (95 %)": "The range the true change lies in with 95 % confidence. A narrow interval means a "
    "precise estimate; one that crosses zero means no clear difference.",
    "Always-valid interval": "An interval that stays correct however often you look at it, so the "
    "experiment can be checked every day and stopped as soon as the answer is clear. It is wider than a "
    "one-look interval.",
    "p-value": "How surprising the observed change would be if the two models were equally good. Below the "
    "plan's significance level (usually 0.05) counts as a clear difference; '< 0.001' means very clear.",
    "Holm": "A correction for testing many metrics at once: with twenty metrics one would look different by "
    "luck alone, so each p-value is adjusted upwards ('p (adjusted)').",
    "Benjamini–Hochberg": "The correction used across segments: it keeps the share of false alarms among the "
    "segments flagged as different low.",
    "A/A check (noise floor)": "A copy of the control runs as if it were a candidate. It must agree with the "
    "control; if it does not, the setup (not the candidate) is broken and the verdict is Invalid.",
    "Health checks": "Checks that the comparison is fair: the A/A copy agrees, failures and missing scores "
    "are even across arms, the judge is consistent. A failed check blocks any verdict.",
    "Minimum detectable effect (MDE)": "The smallest true change the experiment's decision rule would "
    "detect 80 % of the time at this sample, with the test the plan uses: the always-valid intervals of a "
    "sequential plan (wider, so a larger MDE) or one look at a fixed plan's end. For a guardrail it is how "
    "far inside its margin the true change must be to be shown within it. A change smaller than the MDE "
    "probably needs more prompts.",
    "Cluster": "Repeats of one prompt (the same question asked many times) count as one group, so a popular "
    "question does not make the result look more certain than it is.",
    "Preference": "A judge model sees both answers to a prompt (in both orders, to cancel position bias) and "
    f"says which is better; '{PREFERRED}' is the share of prompts where the candidate wins.",
    "Judge": "A model that grades answers, named in the experiment's scoring section. A pointwise judge "
    "scores each answer on its own (e.g. 1–10) and its metric carries the judge's name (the demo's is "
    f"{metric_name('quality')}); a pairwise judge compares two answers ({PREFERRED}).",
    "Routing": "Sending only some segments of traffic (e.g. a route or service) to the cheaper candidate, "
    "where it holds every guardrail, and keeping the rest on the control.",
    "Segment": "A slice of traffic (a service, route, language or prompt length) analysed on its own.",
    "Sample": "Captured prompts replayed on every arm. The plan sets a minimum before any verdict and a "
    "maximum after which the verdict is Inconclusive.",
}


def term_help(*terms: str) -> str:
    """The explanations of `terms`, for a widget's `help=` tooltip."""
    return "\n\n".join(f"**{term}**: {TERMS[term]}" for term in terms)


# The metrics every experiment has, by their column (shown with `analysis.display.metric_name`).
METRICS: dict[str, str] = {
    "error": "Share of requests the model failed to answer (timeouts, provider errors). Lower is better.",
    "ttft_ms": "Time until the first word of the answer arrives: what a user feels as responsiveness.",
    "latency_ms": "Time until the whole answer has arrived. Compared as a ratio (candidate ÷ control).",
    "cost_usd": "What one request costs at the experiment's price snapshot (input, output and cached "
    "tokens).",
}
# A judge's or a check's metric, by its kind (`analysis.load`): it is named after its scorer.
KINDS: dict[str, str] = {
    "mean": "A score given to each answer on its own (a pointwise judge's, e.g. 1–10), averaged per arm; the "
    "change is in points.",
    "preference": "Share of prompts where the judge prefers the candidate's answer to the control's (50 % "
    "is a tie).",
    "binary": "Share of answers for which this check holds; the change is in percentage points.",
    "latency": "A time per request, compared as a ratio (candidate ÷ control).",
    "cost": "A cost per request, in dollars.",
}


def metric_meanings(metrics: Iterable[tuple[str, str]] = ()) -> dict[str, str]:
    """What each metric means, under the name the pages show, from an experiment's (column, kind) pairs;
    without any, the metrics every experiment has and the two a judge adds."""
    pairs = list(metrics)
    if not pairs:
        pointwise = f"A pointwise judge's name (e.g. {metric_name('quality')})"
        standard = {metric_name(column): meaning for column, meaning in METRICS.items()}
        return {**standard, pointwise: KINDS["mean"], PREFERRED: KINDS["preference"]}
    return {metric_name(column): METRICS.get(column) or KINDS.get(kind, "") for column, kind in pairs}
