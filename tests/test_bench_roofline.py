"""bench/run.py's roofline sweep on a tiny size (CPU: through the Triton interpreter), and its table."""
import sys
from pathlib import Path

from helpers import KERNEL_DEVICE

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
import run  # noqa: E402


def test_roofline_sweeps_launch_configurations_and_renders():
    launches = [(256, 2), (1024, 4)]
    result = run.roofline(3000, KERNEL_DEVICE, launches=launches, reps=1)
    assert result["default"] == [1024, 4] and result["copy_GBps"] > 0
    rows = result["launches"]
    assert [(r["config"], r["block"], r["num_warps"]) for r in rows] == [
        (cfg, block, warps) for cfg in ("ssl-2", "linear-3") for block, warps in launches]
    assert all(r["forward_fraction"] > 0 and r["backward_GBps"] > 0 for r in rows)
    table = run.markdown({"device": "test", "torch": "-", "triton": "-", "date": "-", "memory": [],
                          "roofline": result, "pytest_benchmark": {"benchmarks": []}})
    assert "| ssl-2 | 1024* | 4 |" in table and "| linear-3 | 256 | 2 |" in table


def report(benchmarks, device="test", roofline=None):
    return {"device": device, "torch": "t", "triton": "tr", "date": "d", "roofline": roofline,
            "pytest_benchmark": {"benchmarks": [{"fullname": n, "stats": {"median": m}} for n, m in benchmarks]}}


def test_merge_keeps_what_the_new_run_does_not_repeat():
    old = report([("a", 1.0), ("b", 2.0)], roofline={"size": 1})
    new = run.merged(old, report([("b", 3.0), ("c", 4.0)]))
    assert [(b["fullname"], b["stats"]["median"]) for b in new["pytest_benchmark"]["benchmarks"]] == [
        ("a", 1.0), ("b", 3.0), ("c", 4.0)]
    assert new["roofline"] == {"size": 1}


def test_merge_refuses_another_device():
    import pytest
    with pytest.raises(SystemExit, match="existing report is from other"):
        run.merged(report([], device="other"), report([]))
