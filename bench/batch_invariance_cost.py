"""What it costs on a CPU to make an image's file independent of what it is refined with: seconds per relaxed step
(checks included) of four same-size crops refined as one batch with oneDNN on (PyTorch's CPU default), as one
batch with oneDNN off (PyTorch's own convolutions), and one at a time (oneDNN on, and off); and, per way, how many
of y's symbols of each image differ from the image refined alone the same way, and whether its y_hat is bitwise
the same (its file then is).

    python bench/batch_invariance_cost.py                       # 4 crops 256x256, 30 steps, 3 repeats
    python bench/batch_invariance_cost.py --threads 1 --architectures mbt2018-mean

The ways alternate within each repeat (a busy spell of the machine slows them alike); every time is recorded.
Writes bench/results/batch-invariance-cost-<device>.json and .md (the table).
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from machine import device_name, slug
from timing import timed

from sgaplus.files.images import load_shipped_image
from sgaplus.files.loading import load_codec
from sgaplus.refine.presets import refiner_options
from sgaplus.refine.refiner import LatentRefiner

CROPS = [("astronaut", 0, 0), ("coffee", 100, 200), ("chelsea", 0, 100), ("astronaut", 250, 250)]
WAYS = {  # name: (refined as one batch, oneDNN on)
    "batch, oneDNN on": (True, True),
    "batch, oneDNN off": (True, False),
    "one at a time, oneDNN on": (False, True),
    "one at a time, oneDNN off": (False, False),
}


def crops(side):
    return torch.stack([load_shipped_image(name)[:, top:top + side, left:left + side] for name, top, left in CROPS])


def refine(refiner, x, batched, onednn):
    """Each image's y_hat, refining x as one batch or image by image."""
    with torch.backends.mkldnn.flags(enabled=onednn):
        if batched:
            return list(refiner.refine(x).y_hat)
        return [refiner.refine(x[i:i + 1]).y_hat[0] for i in range(x.shape[0])]


def measure(architecture, x, iterations, repeats):
    """Per way: the seconds of each repeat, the seconds per step (median), and per image the symbols of y that
    differ from the image refined alone the same way (y_hat more than half a step apart; float rounding of the means
    moves it by far less) and whether its y_hat is bitwise that image's."""
    codec = load_codec(bundled=architecture)
    options = {**refiner_options("fast", iterations=iterations), "compile": False}
    refiner = LatentRefiner(codec, "ssl", seed=0, **options)
    refine(refiner, x[:1], True, True)  # warm-up: first calls, allocator
    seconds = {way: [] for way in WAYS}
    results = {}
    for _ in range(repeats):
        for way, (batched, onednn) in WAYS.items():
            elapsed, results[way] = timed(lambda: refine(refiner, x, batched, onednn), "cpu")
            seconds[way].append(elapsed)
    report = {}
    for way, (batched, onednn) in WAYS.items():
        alone = results["one at a time, oneDNN on" if onednn else "one at a time, oneDNN off"]
        report[way] = {"seconds": seconds[way], "seconds_per_step": statistics.median(seconds[way]) / iterations,
                       "symbols_differing_from_alone": [int(((a - b).abs() > 0.5).sum())
                                                        for a, b in zip(results[way], alone)],
                       "y_hat_bitwise_alone": [torch.equal(a, b) for a, b in zip(results[way], alone)]}
    base = report["batch, oneDNN on"]["seconds_per_step"]
    for way in report.values():
        way["time_over_batch_onednn_on"] = way["seconds_per_step"] / base
    return report


def table(report):
    lines = [f"# Cost of batch-invariant files on CPU ({report['device']}, torch {report['torch']}, {report['date']})",
             "", f"{len(CROPS)} crops {report['side']}x{report['side']} ({', '.join(n for n, _, _ in CROPS)}), "
             f"{report['iterations']} SSL steps of the fast preset (budget schedule, lr 2e-2, a check every 10), "
             f"eager, the bundled models' default quality; {report['repeats']} repeats, the ways alternating; load "
             f"average {report['load_average_at_start']:.1f} at the start, {report['load_average_at_end']:.1f} at "
             f"the end. {report['note']}", "",
             "| model | way | seconds per step of the 4 images (median) | / batch, oneDNN on | seconds (each repeat) "
             "| y symbols differing from alone (per image) | y_hat bitwise alone's |", "|---|---|---|---|---|---|---|"]
    for architecture, ways in report["models"].items():
        for way, run in ways.items():
            lines.append(f"| {architecture} | {way} | {run['seconds_per_step']:.3f} | "
                         f"{run['time_over_batch_onednn_on']:.2f} | {', '.join(f'{s:.1f}' for s in run['seconds'])} "
                         f"| {', '.join(map(str, run['symbols_differing_from_alone']))} | "
                         f"{sum(run['y_hat_bitwise_alone'])} of {len(run['y_hat_bitwise_alone'])} |")
    return "\n".join(lines) + "\n"


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=["mbt2018-mean", "mbt2018"], help="bundled models")
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice)")
    parser.add_argument("--note", default="", help="said next to the figures (the machine's load, say)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args()


def main():
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_at_start = os.getloadavg()[0]  # the machine's other work, one-minute average
    x = crops(args.side)
    report = {"device": device_name("cpu"), "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d"),
              "side": args.side, "iterations": args.iterations, "repeats": args.repeats, "note": args.note,
              "load_average_at_start": load_at_start,
              "models": {a: measure(a, x, args.iterations, args.repeats) for a in args.architectures}}
    report["load_average_at_end"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"batch-invariance-cost-{slug(report['device'])}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    path.with_suffix(".md").write_text(table(report))
    print(table(report))
    print(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
