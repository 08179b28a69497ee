"""`mrt-bridge bench`: the JSON contract (last line) and the guidance/overlap options, on the bundled model.

Functional only: figures are printed, never asserted against a time.
"""

from __future__ import annotations

import json
import re

import pytest

from bridge import cli


@pytest.mark.parametrize("num_cfgs, overlap", [(2, True), (0, False)])
def test_bench_json_reports_rows_overlap_and_percentiles(bundled_package, capsys, num_cfgs, overlap):
    args = ["bench", "--model", str(bundled_package), "--frames", "6", "--warmup", "2", "--provider", "cpu",
            "--num-cfgs", str(num_cfgs), "--json"] + ([] if overlap else ["--no-overlap"])
    assert cli.main(args) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["num_cfgs"] == num_cfgs and result["rows"] == num_cfgs + 1
    assert result["overlap"] is overlap and result["frames"] == 6
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["stages"]) == {"encoder", "temporal", "depth", "codec"}
    assert all(result["stages"][s]["p50_ms"] > 0 for s in result["stages"])
    assert isinstance(result["machine"]["isa"], list) and result["threads"]["codec"] >= 1
    assert result["int8_scheme"] is None and result["codec_precision"] == "fp32"  # the bundled model is fp32
    assert result["int8_matmul_kernel"] is None
    # CPU time of all threads over the measured frames: never more than every core for the whole time
    assert result["cpu_ms_per_frame"] > 0 and 0 < result["cores_busy"] <= 1


def test_bench_table_states_the_cpu_work_of_a_frame(bundled_package, capsys):
    args = ["bench", "--model", str(bundled_package), "--frames", "4", "--warmup", "1", "--provider", "cpu"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^CPU \d+\.\d\d ms a frame \(all threads\): \d+ cores \d+% busy; at this much work a frame "
                     r"period averages at least \d+\.\d\d ms$", out, re.M), out
