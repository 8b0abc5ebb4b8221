"""Static cost of the op's compiled kernels: what can be known without a GPU. Predictions, not measurements.

    python bench/kernels_static.py                     # sm_80 and sm_90, float32 configurations
    python bench/kernels_static.py --arch 90 -k "ssl-2 forward"

Each configuration is compiled for the target (tools/compile_kernels.py: Triton with its bundled ptxas)
and its cubin read with the bundled cuobjdump: registers, spills (local memory, LDL/STL), SASS
instructions and MUFU (special-function unit) instructions per element, branches. With the GPU's
published figures (HARDWARE) that gives three lower bounds on the time per element -- instruction
issue, MUFU throughput, DRAM traffic -- and so an upper bound on the fraction of copy bandwidth the
kernel can reach: 100% when the memory bound is the largest. Real kernels fall short of these bounds
(latency, occupancy, tails); only a GPU run measures them (bench/run.py's roofline).

Writes bench/results/kernels-static.{json,md}.
"""
import argparse
import collections
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tools"))

import compile_kernels  # noqa: E402

from sgaplus.kernels import rounding  # noqa: E402

# Published figures: SM count, boost clock (GHz), DRAM bandwidth (TB/s). Both issue one warp instruction
# per clock on each of an SM's 4 schedulers and run 16 MUFU operations per clock per SM.
HARDWARE = {
    90: {"gpu": "H100 SXM5", "sms": 132, "ghz": 1.98, "dram_tbps": 3.35},
    80: {"gpu": "A100 SXM4 80GB", "sms": 108, "ghz": 1.41, "dram_tbps": 2.039},
}
ISSUE_PER_SM_CLOCK = 4 * 32  # thread-instructions per clock per SM
MUFU_PER_SM_CLOCK = 16
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# The goals of the design (static, sm_90, float32, no means): SASS instructions per element.
TARGETS = {("2", "forward"): 80, ("2", "backward"): 110, ("3", "forward"): 200, ("3", "backward"): 280}
MAX_REGISTERS = 128


def _tool(name):
    import triton.backends.nvidia as nvidia
    return os.path.join(os.path.dirname(nvidia.__file__), "bin", name)


def sass_opcodes(cubin):
    """(opcodes of the kernel's SASS in order, resource-usage text) of a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        sass = subprocess.run([_tool("cuobjdump"), "-sass", f.name], capture_output=True, text=True, check=True).stdout
        usage = subprocess.run([_tool("cuobjdump"), "-res-usage", f.name], capture_output=True, text=True,
                               check=True).stdout
    opcodes = [m.group(2) for m in (re.match(r"\s*/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
                                    for line in sass.splitlines()) if m]
    return opcodes, usage


def bytes_per_element(config):
    """DRAM bytes moved per element: forward reads y (+ means) and writes y~; backward reads y (+ means) and
    grad_out, writes grad_y (+ grad_means)."""
    y = DTYPE_BYTES[config.dtype]
    means = DTYPE_BYTES[config.means] if config.means else 0
    if config.direction == "forward":
        return 2 * y + means
    return 3 * y + means + (means if config.means_grad else 0)


def analyse(config, kernel, arch):
    opcodes, usage = sass_opcodes(kernel.asm["cubin"])
    counts = collections.Counter(op.split(".")[0] for op in opcodes)
    executed = len(opcodes) - counts["NOP"]
    resources = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", usage))
    elements_per_thread = rounding.BLOCK / (32 * kernel.metadata.num_warps)
    row = {"config": config.name, "arch": arch, "kernel": kernel.metadata.name,
           "registers": int(resources.get("REG", 0)), "local_bytes": int(resources.get("LOCAL", 0)),
           "spill_instructions": counts["LDL"] + counts["STL"], "branches": counts["BRA"],
           "sass_instructions": executed, "elements_per_thread": elements_per_thread,
           "sass_per_element": executed / elements_per_thread, "mufu_per_element": counts["MUFU"] / elements_per_thread,
           "bytes_per_element": bytes_per_element(config)}
    hw = HARDWARE.get(arch)
    if hw:
        clock = hw["sms"] * hw["ghz"] * 1e9
        bounds = {"issue": row["sass_per_element"] / (clock * ISSUE_PER_SM_CLOCK),
                  "mufu": row["mufu_per_element"] / (clock * MUFU_PER_SM_CLOCK),
                  "memory": row["bytes_per_element"] / (hw["dram_tbps"] * 1e12)}
        binding = max(bounds, key=bounds.get)
        row.update({"gpu": hw["gpu"], "bound_ns_per_million": {k: v * 1e15 for k, v in bounds.items()},
                    "binding": binding, "max_fraction_of_copy_bandwidth": bounds["memory"] / bounds[binding]})
    return row


def target_of(row):
    config = row["config"]
    classes = config.split()[0].split("-")[1]
    direction = "forward" if " forward" in config else "backward"
    plain = config.endswith("forward float32") or config.endswith("backward float32")
    return TARGETS.get((classes, direction)) if plain and row["arch"] == 90 else None


def markdown(report):
    lines = ["# Static cost of the compiled kernels (predictions, not measurements)", "",
             f"Triton {report['triton']}, torch {report['torch']}, {report['date']}. Compiled without a GPU by "
             "Triton's bundled ptxas and read with cuobjdump; launch BLOCK="
             f"{report['block']}, num_warps={report['num_warps']} (the op's). SASS and MUFU counts are per element "
             "(instructions per thread / elements per thread; the kernels are straight-line code). Bounds use the "
             "published SM count, boost clock and DRAM bandwidth: issue = SASS/element over 4 x 32 thread-"
             "instructions per clock per SM; MUFU = MUFU/element over 16 per clock per SM; memory = bytes/element "
             "over DRAM bandwidth. 'copy bw' is the best fraction of copy bandwidth those bounds allow (100% = "
             "memory-bound). Target: the design goal in SASS/element (sm_90, float32, no means).", ""]
    for arch in sorted({r["arch"] for r in report["kernels"]}, reverse=True):
        rows = [r for r in report["kernels"] if r["arch"] == arch]
        gpu = rows[0].get("gpu", f"sm_{arch}")
        lines += [f"## sm_{arch} ({gpu})", "",
                  "| configuration | regs | spills | SASS/elem | MUFU/elem | bytes/elem | binding | copy bw | target |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            target = target_of(r)
            verdict = "" if target is None else f"<= {target}: {'met' if r['sass_per_element'] <= target else 'MISSED'}"
            copy = f"{100 * r['max_fraction_of_copy_bandwidth']:.0f}%" if "binding" in r else "-"
            lines.append(f"| {r['config']} | {r['registers']} | {r['spill_instructions']} | "
                         f"{r['sass_per_element']:.1f} | {r['mufu_per_element']:.2f} | {r['bytes_per_element']} | "
                         f"{r.get('binding', '-')} | {copy} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (default: 90 and 80)")
    parser.add_argument("-k", default="", help="only configurations whose name contains this text")
    parser.add_argument("--all-dtypes", action="store_true", help="also float16/bfloat16 and unaligned variants")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    import torch
    import triton

    configs = [c for c in compile_kernels.launch_configs() if args.k in c.name
               and (args.all_dtypes or (c.dtype == "float32" and c.aligned))]
    rows, failed = [], []
    for arch in args.arch or (90, 80):
        for config, _, kernel, error in compile_kernels.compile_configs(arch, configs):
            if error:
                failed.append(f"sm_{arch} {config.name}: {error}")
            else:
                rows.append(analyse(config, kernel, arch))
    for line in failed:
        print("FAILED", line)
    report = {"triton": triton.__version__, "torch": str(torch.__version__), "date": datetime.date.today().isoformat(),
              "block": rounding.BLOCK, "num_warps": rounding.NUM_WARPS, "hardware": HARDWARE, "kernels": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels-static.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "kernels-static.md").write_text(markdown(report))
    missed = [r["config"] for r in rows if target_of(r) and r["sass_per_element"] > target_of(r)]
    heavy = [r["config"] for r in rows if r["registers"] > MAX_REGISTERS or r["spill_instructions"]]
    print(f"wrote {args.out / 'kernels-static.json'} and .md: {len(rows)} kernels; targets missed: "
          f"{', '.join(missed) or 'none'}; spills or > {MAX_REGISTERS} registers: {', '.join(heavy) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
