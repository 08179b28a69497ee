"""The daemons' underrun log throttle (bridge.daemon.stats.GrowthWarning)."""

from __future__ import annotations

from bridge.daemon.stats import GrowthWarning


def test_a_line_only_when_the_count_grew_and_not_again_within_the_interval() -> None:
    warning = GrowthWarning(every_s=3600.0)
    assert not warning.due(0)  # nothing happened yet
    assert warning.due(3)  # first growth: one line
    assert not warning.due(3)  # unchanged
    assert not warning.due(9)  # grew again, but within the interval
    eager = GrowthWarning(every_s=0.0)
    assert eager.due(1) and not eager.due(1) and eager.due(2)
