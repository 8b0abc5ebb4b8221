"""How far the golden refinement scenarios (tests/test_refine_golden.py) move when only the float arithmetic
changes: other thread counts and other vectorised CPU kernels (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA). Each
setting runs every scenario in a fresh process; the report gives, per quantity (a path of the record with list
positions dropped, e.g. history.loss), the largest relative deviation from the record, and every discrete
outcome (steps, sweeps) that differed. The golden test's tolerances are set above these figures.

    python tools/golden_spread.py [--out bench/results/golden-spread.json]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from machine import device_name  # noqa: E402

RECORD = ROOT / "tests" / "data" / "refine_golden.json"
SETTINGS = {  # name: (environment variables, torch threads)
    "threads-2": ({}, 2),
    "threads-1": ({}, 1),
    "threads-3": ({}, 3),
    "aten-default": ({"ATEN_CPU_CAPABILITY": "default"}, 2),
    "aten-avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, 2),
    "onednn-avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, 2),
    "onednn-sse41": ({"ONEDNN_MAX_CPU_ISA": "SSE41"}, 2),
    "aten-default-onednn-sse41-threads-1": ({"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}, 1),
}
SCRIPT = """
import json, sys, torch
torch.set_num_threads({threads})
sys.path.insert(0, {tests!r})
import conftest  # the suite's setup (the Triton interpreter without a GPU)
import test_refine_golden as golden
print(json.dumps({{name: golden.run(name) for name in golden.SCENARIOS}}))
"""


def run_setting(env, threads):
    code = SCRIPT.format(threads=threads, tests=str(ROOT / "tests"))
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def compare(actual, expected, path, spread, flips):
    """Walk record and result together: floats add |relative deviation| to spread[quantity], other values that
    differ are flips."""
    if isinstance(expected, dict):
        for key in expected:
            compare(actual[key], expected[key], f"{path}.{key}", spread, flips)
    elif isinstance(expected, list):
        if len(actual) != len(expected):
            flips.append(f"{path}: length {len(actual)} != {len(expected)}")
            return
        for i, (a, e) in enumerate(zip(actual, expected)):
            compare(a, e, f"{path}[{i}]", spread, flips)
    elif isinstance(expected, float) and not isinstance(actual, int) and math.isfinite(expected):
        quantity = re.sub(r"\[\d+\]", "", path.split(".", 1)[1])
        deviation = abs(actual - expected) / max(abs(expected), 1e-12)
        spread[quantity] = max(spread.get(quantity, 0.0), deviation)
    elif actual != expected and not (isinstance(expected, float) and math.isnan(expected) and math.isnan(actual)):
        flips.append(f"{path}: {actual!r} != {expected!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "golden-spread.json")
    args = parser.parse_args(argv)
    record = json.loads(RECORD.read_text())
    report = {"machine": device_name().rsplit(" (", 1)[0], "date": time.strftime("%Y-%m-%d"),
              "settings": {}}
    for name, (env, threads) in SETTINGS.items():
        start = time.perf_counter()
        result = run_setting(env, threads)
        spread, flips = {}, []
        for scenario in record:
            compare(result[scenario], record[scenario], scenario, spread, flips)
        report["settings"][name] = {"env": env, "threads": threads, "seconds": round(time.perf_counter() - start, 1),
                                    "largest_relative_deviation": spread, "discrete_differences": flips}
        print(f"{name}: {max(spread.values()):.2e} largest, {len(flips)} discrete differences", file=sys.stderr)
    largest = {}
    for setting in report["settings"].values():
        for quantity, value in setting["largest_relative_deviation"].items():
            largest[quantity] = max(largest.get(quantity, 0.0), value)
    report["largest_over_settings"] = dict(sorted(largest.items()))
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["largest_over_settings"], indent=1))


if __name__ == "__main__":
    main()
