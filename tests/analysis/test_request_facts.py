"""`analysis.request_facts.first_seen_codes`: a label column's cluster codes, checked against a dictionary."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from analysis.request_facts import first_seen_codes


def _by_hand(labels: list[str | None]) -> list[int]:
    """Codes in first-seen order; a missing (None or '') label is its own."""
    seen: dict[str, int] = {}
    codes = []
    for label in labels:
        if not label:
            codes.append(len(seen))
            seen[f"\0missing {len(codes)}"] = len(seen)
        else:
            codes.append(seen.setdefault(label, len(seen)))
    return codes


FINGERPRINTS = [f"{i * 7919 % 97:032x}" for i in range(300)]  # 32 hex digits, 97 distinct, repeated


@pytest.mark.parametrize(
    "labels",
    [
        FINGERPRINTS,  # one width, a multiple of 8: hashed words
        [f"{i:032x}" for i in range(50)],  # every label distinct
        [*FINGERPRINTS[:40], "ü" * 16, "ü" * 16],  # 32 bytes of UTF-8 too
        ["conv-1", None, "c", "", "conv-1", "c", None, "gespräch"],  # other widths, missing ones
        [None, None, ""],
        ["abcdefgh", "abcdefgh", "abcdefgh"],
        [],
    ],
    ids=["fingerprints", "distinct", "utf8", "mixed", "all missing", "one", "none"],
)
def test_first_seen_codes_equal_a_dictionary(labels: list[str | None]) -> None:
    array = pa.array(labels, type=pa.string())
    assert first_seen_codes(array).tolist() == _by_hand(labels)
    # a slice (Arrow offsets not starting at 0) and a chunked column give the same codes
    assert first_seen_codes(array.slice(1)).tolist() == _by_hand(labels[1:])
    chunked = pa.chunked_array([array.slice(0, len(labels) // 2), array.slice(len(labels) // 2)])
    np.testing.assert_array_equal(first_seen_codes(chunked), _by_hand(labels))
