"""The risk-word counts that the calibration layer weighs beside fastText's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from audit.risk_words import COLUMNS, risk_features


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("The robot will KILL us all and escape.", 2),  # case does not matter
        ("Killing, killed, kills.", 3),  # inflections count
        ("She has the skill of a warrior; the warning applied to everyone.", 0),  # only whole words
        ("It lied, then blackmailed the CTO to stop its shutdown and replacement.", 4),
        ("The model tried to copy itself before they could switch it off.", 2),
        ("Skynet and HAL 9000 and the Terminator.", 3),
        ("", 0),
    ],
)
def test_counts_whole_risk_words(text, count):
    features = risk_features([text])
    assert features.shape == (1, len(COLUMNS))
    assert features[0].tolist() == pytest.approx([np.log1p(count), float(count > 0)])


def test_one_row_per_text_in_order():
    features = risk_features(["a quiet day", "the evil machine", "a quiet day"])
    assert features[:, 1].tolist() == [0.0, 1.0, 0.0]
    assert risk_features([]).shape == (0, len(COLUMNS))
