"""How a model's copy threshold is read from its codes: copies stand apart from the look-alikes
around them, and the cut lets through at most a hundredth of the look-alikes (the command
line on whole collections: tests/cli/test_copy_calibration.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.any_catalog


def test_copies_stand_apart_where_look_alikes_fade_into_one_another():
    """The shape the calibration reads: a group of close neighbours then a drop (copies),
    against a slope with no drop (look-alikes), and a lone close neighbour (either)."""
    from indexer.validation import nearest_look_alikes

    rng = np.random.default_rng(0)
    itself = -2.0
    groups = [itself, 0.97, 0.95, 0.93, *rng.uniform(0.2, 0.5, 30)]
    slope = [itself, *np.linspace(0.97, 0.6, 33)]
    lone = [itself, 0.96, *rng.uniform(0.2, 0.5, 32)]
    far = [itself, 0.75, 0.74, *rng.uniform(0.2, 0.5, 31)]  # a group, but not copy-close
    # A fall of more than GAP, in neighbours that fall 0.05 at each step anyway.
    steady = [itself, 0.95, 0.93, 0.80, *np.linspace(0.75, 0.0, 30)]
    rows = np.array([groups, slope, lone, far, steady])
    negatives, held, farthest = nearest_look_alikes(rows, level=0.8)
    assert held.tolist() == [True, False, False, False, False]
    assert negatives[0] == pytest.approx(max(groups[4:]))
    assert farthest[0] == pytest.approx(0.93)
    assert negatives[1:].tolist() == pytest.approx([0.97, 0.96, 0.75, 0.95])
    assert nearest_look_alikes(np.array([[itself, 0.99]]), level=0.8)[0].tolist() == [0.99]


def test_the_threshold_lets_through_a_hundredth_of_look_alikes_and_never_sinks_below_held_ones():
    """Where no probe holds copies, every nearest look-alike counts against the cut (a
    tenth used to be set aside, and passed); where every probe does, the cut stays above
    the middle of the look-alikes below their groups."""
    from indexer.validation import COPIES_PER_PROBE, threshold_for

    look = np.linspace(0.2, 0.9, 100)
    copies = np.full(COPIES_PER_PROBE * 100, 0.95)
    threshold = threshold_for(copies, look, np.zeros(100, bool), np.zeros(100))
    assert (look >= threshold).sum() <= 1
    # Three probes in ten hold copies: the closest three tenths of the look-alikes may be
    # copies too and pass; the next one is the cut.
    some = np.arange(100) < 30
    threshold = threshold_for(copies, look, some, np.full(100, 0.95))
    assert threshold == pytest.approx(look[look <= np.quantile(look, 0.7)].max(), abs=1e-4)
    held = np.ones(100, bool)
    assert threshold_for(copies, look, held, np.full(100, 0.9)) == pytest.approx(np.median(look),
                                                                              abs=1e-4)
