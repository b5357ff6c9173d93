"""``python -m expr_models figure``: the README figure, drawn here from the packaged photos only."""

from pathlib import Path

import numpy as np
import pytest

from expr_models.evaluation.figure import PANEL, make_figure, packaged_photos

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"


@pytest.mark.skipif(not (CHECKPOINTS / "average" / "config.json").is_file(), reason="no committed average edit")
def test_figure_shows_input_and_edit_head_and_mouth():
    from expr_models.pipeline import ExpressionEditor

    editor = ExpressionEditor(CHECKPOINTS)
    photos = packaged_photos()[:1]  # the astronaut
    figure = np.asarray(make_figure(editor, photos, columns=(("average", "neutral"), ("nst", "happy"))))
    assert figure.shape[1] == 2 * PANEL  # the input and the one column the editor can draw without a reference
    top = figure.shape[0] - 2 * PANEL  # header and label above the two panel rows
    head_input, head_edit = figure[top:top + PANEL, :PANEL], figure[top:top + PANEL, PANEL:]
    mouth_input, mouth_edit = figure[top + PANEL:, :PANEL], figure[top + PANEL:, PANEL:]
    # The smile closes: the mouth panel changes much more than the head panel's top (hair, forehead).
    mouth_change = np.abs(mouth_input.astype(int) - mouth_edit).mean()
    forehead_change = np.abs(head_input[:PANEL // 4].astype(int) - head_edit[:PANEL // 4]).mean()
    assert mouth_change > 3 and forehead_change < mouth_change / 3
