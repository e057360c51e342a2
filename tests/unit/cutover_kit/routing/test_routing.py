from __future__ import annotations

import pytest

from cutover_kit.routing import RouterWeights, weight_change_order, weights_for_green_percent


def test_percent_maps_to_exact_weights():
    assert weights_for_green_percent(5) == RouterWeights(blue=95, green=5)
    assert weights_for_green_percent(100).green_percent == 100


@pytest.mark.parametrize("bad", [-1, 101, 2.5])
def test_bad_percent_is_refused(bad):
    with pytest.raises(ValueError, match="green percent"):
        weights_for_green_percent(bad)


def test_weight_raised_before_the_other_is_lowered():
    assert weight_change_order(RouterWeights(100, 0), RouterWeights(95, 5)) == [("green", 5), ("blue", 95)]
    assert weight_change_order(RouterWeights(0, 100), RouterWeights(100, 0)) == [("blue", 100), ("green", 0)]
    assert weight_change_order(RouterWeights(75, 25), RouterWeights(75, 25)) == []
