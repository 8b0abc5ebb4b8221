"""Run the benchmark suites and write bench/results/<device>.{json,md,png}.

    python bench/run.py              # all suites on this machine's device (CUDA if present)
    python bench/run.py -k "op and ssl-2"   # a subset, as pytest -k selects it
    python bench/run.py -k test_refine_step --merge   # add to (or replace in) this device's report

The JSON holds pytest-benchmark's own JSON plus the device name, torch/triton versions and the
date, the memory each contender keeps for backward, and on a GPU the bandwidth roofline of each
kernel launch configuration (BLOCK, num_warps) in LAUNCHES.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from machine import device_name, slug  # noqa: E402
from registry import CONTENDERS, DEVICE, HEADLINE_CONFIGS, LAUNCHES, SIZES, config, kept_bytes, rounding_fn, synchronize  # noqa: E402,E501


def memory_table():
    """Bytes per element each contender keeps between forward and backward (float32 y)."""
    rows = []
    for cfg_name in HEADLINE_CONFIGS:
        for contender in CONTENDERS:
            size = SIZES[-1] if DEVICE == "cuda" else SIZES[0]
            y = (torch.randn(size, device=DEVICE) * 3).requires_grad_()
            fn = rounding_fn(contender, config(cfg_name))
            fn(y)  # compile / warm up first
            kept = kept_bytes(fn, y)
            rows.append({"config": cfg_name, "contender": contender, "size": size,
                         "bytes_per_element": kept / size,
                         "method": "cuda allocator" if DEVICE == "cuda" else "saved-tensor hooks"})
    return rows


def seconds_per_call(fn, device, reps=20):
    fn()
    synchronize(device)
    if device != "cuda":
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps / 1e3


def roofline(n, device, launches=LAUNCHES, reps=20):
    """The kernels' throughput at n float32 elements as a fraction of a device-to-device copy's bandwidth,
    for each launch configuration (BLOCK, num_warps); the default one is marked."""
    from sgaplus.kernels import rounding
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    copy_bw = 2 * 4 * n / seconds_per_call(lambda: dst.copy_(src), device, reps)
    result = {"size": n, "copy_GBps": copy_bw / 1e9, "default": [rounding.BLOCK, rounding.NUM_WARPS], "launches": []}
    y, grad = src * 3, torch.randn_like(src)
    tau, seed = torch.tensor(0.5, device=device), torch.tensor(1, device=device)
    for cfg_name in HEADLINE_CONFIGS:
        cfg = config(cfg_name)
        for block, warps in launches:
            fwd = seconds_per_call(lambda: rounding.forward(y, None, tau, seed, cfg, block, warps), device, reps)
            bwd = seconds_per_call(lambda: rounding.backward(y, None, grad, tau, seed, cfg, False, block, warps),
                                   device, reps)
            # forward reads y and writes y~; backward reads y and grad_out and writes grad_y
            result["launches"].append({
                "config": cfg_name, "block": block, "num_warps": warps,
                "forward_GBps": 2 * 4 * n / fwd / 1e9, "backward_GBps": 3 * 4 * n / bwd / 1e9,
                "forward_fraction": 2 * 4 * n / fwd / copy_bw, "backward_fraction": 3 * 4 * n / bwd / copy_bw})
    return result


def median_ms(bench):
    return bench["stats"]["median"] * 1e3


def markdown(report):
    lines = [f"# Benchmarks on {report['device']}", "",
             f"torch {report['torch']}, triton {report['triton']}, {report['date']}. Median times in ms; "
             "ratios are eager/fused and compile/fused from the same run.", ""]
    groups = {}
    for bench in report["pytest_benchmark"]["benchmarks"]:
        info = bench["extra_info"]
        if info.get("suite") in ("op", "methods"):
            key = (info["suite"], info["config"], info["dtype"], info["passes"], info["size"])
            groups.setdefault(key, {})[info["contender"]] = median_ms(bench)
    if groups:
        lines += ["## Op speed", "", "| suite | config | dtype | pass | elements | eager | compile | fused | "
                  "fused vs eager | fused vs compile |", "|---|---|---|---|---|---|---|---|---|---|"]
        for (suite, cfg, dtype, passes, size), t in sorted(groups.items()):
            ratio = lambda k: f"{t[k] / t['fused']:.2f}x" if k in t and "fused" in t else "-"  # noqa: E731
            cell = lambda k: f"{t[k]:.3f}" if k in t else "-"  # noqa: E731
            lines.append(f"| {suite} | {cfg} | {dtype} | {passes} | {size:,} | {cell('eager')} | {cell('compile')} "
                         f"| {cell('fused')} | {ratio('eager')} | {ratio('compile')} |")
        lines.append("")
    steps = {}
    for bench in report["pytest_benchmark"]["benchmarks"]:
        info = bench["extra_info"]
        if info.get("suite") == "refine-step":
            steps.setdefault(info["batch"], {})[info["contender"]] = median_ms(bench)
    if steps:
        lines += ["## One refinement step (768x512 image, bundled model, forward+backward+Adam)", "",
                  "| batch | eager rounding | fused op | speed-up |", "|---|---|---|---|"]
        for batch, t in sorted(steps.items()):
            if "eager" in t and "fused" in t:
                lines.append(f"| {batch} | {t['eager']:.1f} | {t['fused']:.1f} | {t['eager'] / t['fused']:.2f}x |")
        lines.append("")
    if report.get("memory"):
        lines += ["## Memory kept for backward (float32 y)", "", "Bytes per element the autograd graph keeps "
                  "besides y itself (every contender also keeps y: 4 bytes/element).", "",
                  "| config | contender | elements | bytes/element beyond y |",
                  "|---|---|---|---|"]
        for row in report["memory"]:
            lines.append(f"| {row['config']} | {row['contender']} | {row['size']:,} | {row['bytes_per_element']:.2f} |")
        lines.append(f"\nMeasured with {report['memory'][0]['method']}.\n")
    if report.get("roofline"):
        r = report["roofline"]
        lines += ["## Bandwidth roofline", "", f"Device-to-device copy: {r['copy_GBps']:.0f} GB/s at "
                  f"{r['size']:,} float32 elements. Fraction of it that each launch configuration reaches "
                  f"(* = the kernels' default, BLOCK={r['default'][0]}, num_warps={r['default'][1]}).", "",
                  "| config | BLOCK | num_warps | forward | backward |", "|---|---|---|---|---|"]
        for row in r["launches"]:
            mark = "*" if [row["block"], row["num_warps"]] == r["default"] else ""
            lines.append(f"| {row['config']} | {row['block']}{mark} | {row['num_warps']} | "
                         f"{100 * row['forward_fraction']:.0f}% | {100 * row['backward_fraction']:.0f}% |")
    return "\n".join(lines) + "\n"


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    series = {}
    for bench in report["pytest_benchmark"]["benchmarks"]:
        info = bench["extra_info"]
        if info.get("suite") == "op" and info["passes"] == "fwd+bwd":
            series.setdefault((info["config"], info["dtype"]), {}).setdefault(info["contender"], []).append(
                (info["size"], median_ms(bench)))
    if not series:
        return False
    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.8), squeeze=False)
    for ax, ((cfg, dtype), contenders) in zip(axes[0], sorted(series.items())):
        for contender, points in sorted(contenders.items()):
            points.sort()
            ax.loglog([p[0] for p in points], [p[1] for p in points], "o-", label=contender)
        ax.set_title(f"{cfg} {dtype} forward+backward")
        ax.set_xlabel("elements")
        ax.set_ylabel("median time (ms)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(report["device"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def merged(old, new):
    """new, plus old's benchmarks that new does not repeat (by pytest name) and old's roofline if new has none."""
    if (old["device"], old["torch"], old["triton"]) != (new["device"], new["torch"], new["triton"]):
        sys.exit(f"--merge: the existing report is from {old['device']}, torch {old['torch']}, triton "
                 f"{old['triton']}; this run is not — move it away first")
    repeated = {bench["fullname"] for bench in new["pytest_benchmark"]["benchmarks"]}
    kept = [bench for bench in old["pytest_benchmark"]["benchmarks"] if bench["fullname"] not in repeated]
    new["pytest_benchmark"]["benchmarks"] = kept + new["pytest_benchmark"]["benchmarks"]
    new["roofline"] = new["roofline"] or old.get("roofline")
    new["merged_dates"] = sorted(set(old.get("merged_dates", [old["date"]]) + [new["date"]]))
    return new


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default=None, help="pytest -k expression selecting benchmarks")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--merge", action="store_true",
                        help="keep the benchmarks of this device's existing report that this run does not repeat")
    parser.add_argument("--no-roofline", action="store_true", help="skip the GPU roofline sweep")
    parser.add_argument("--no-memory", action="store_true", help="skip the table of bytes kept for backward")
    parser.add_argument("--sizes", help="comma-separated op sizes in elements, instead of registry.SIZES")
    parser.add_argument("--step-image", help="HxW of the refinement-step benchmark's image (default 512x768)")
    args = parser.parse_args()
    for variable, value in (("SGAPLUS_BENCH_SIZES", args.sizes), ("SGAPLUS_BENCH_STEP_IMAGE", args.step_image)):
        if value:
            os.environ[variable] = value
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.json"
        cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={raw}", "-o", "testpaths=bench"] + (["-k", args.k] if args.k else [])
        if subprocess.run(cmd, cwd=HERE.parent).returncode != 0:
            sys.exit("benchmarks failed")
        benchmarks = json.loads(raw.read_text())
    import triton
    name = device_name(DEVICE)
    stem = args.out / slug(name)
    report = {"device": name, "torch": str(torch.__version__), "triton": triton.__version__,
              "date": datetime.date.today().isoformat(), "memory": None if args.no_memory else memory_table(),
              "roofline": roofline(SIZES[-1], DEVICE) if DEVICE == "cuda" and not args.no_roofline else None,
              "pytest_benchmark": benchmarks}
    if args.merge and stem.with_suffix(".json").exists():
        report = merged(json.loads(stem.with_suffix(".json").read_text()), report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    plotted = plot(report, stem.with_suffix(".png"))
    print(f"wrote {stem}.json, {stem}.md" + (f", {stem}.png" if plotted else ""))


if __name__ == "__main__":
    main()
