"""The daemons' underrun log: its throttle (GrowthWarning) and its advice (underrun_advice)."""

from __future__ import annotations

from bridge import FRAME_MS
from bridge.daemon.stats import GrowthWarning, underrun_advice


def test_a_line_only_when_the_count_grew_and_not_again_within_the_interval() -> None:
    warning = GrowthWarning(every_s=3600.0)
    assert not warning.due(0)  # nothing happened yet
    assert warning.due(3)  # first growth: one line
    assert not warning.due(3)  # unchanged
    assert not warning.due(9)  # grew again, but within the interval
    eager = GrowthWarning(every_s=0.0)
    assert eager.due(1) and not eager.due(1) and eager.due(2)


def test_advice_says_a_buffer_cannot_fix_a_step_slower_than_the_frame() -> None:
    slow = underrun_advice({"p50": FRAME_MS * 2, "p99": FRAME_MS * 3}, 3, "try --num-cfgs 0")
    assert "slower than real time" in slow and "only delays the gaps" in slow and slow.endswith("try --num-cfgs 0")
    bursts = underrun_advice({"p50": FRAME_MS * 0.75, "p99": FRAME_MS * 1.5}, 3, "try --num-cfgs 0")
    assert "not keeping up" in bursts and "buffer 120 ms" in bursts and bursts.endswith("try a larger --buffer-frames")
    assert "not keeping up" in underrun_advice({"p50": None, "p99": None}, 3, "x")  # no step timed yet


def test_fixes_suggest_fewer_rows_only_where_there_are_guidance_rows() -> None:
    from types import SimpleNamespace

    from bridge.pipeline import real_time_fixes

    assert "--num-cfgs 0" in real_time_fixes(SimpleNamespace(num_cfgs=2))
    assert "--num-cfgs" not in real_time_fixes(SimpleNamespace(num_cfgs=0))
    assert real_time_fixes(SimpleNamespace(num_cfgs=1), first="fewer streams, ").startswith(
        "try fewer streams, --num-cfgs 0 (one row instead of 2)")
