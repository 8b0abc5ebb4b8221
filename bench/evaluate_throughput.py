"""`sgaplus evaluate`'s throughput: (rate point, image) pairs per second with same-size images refined together
(--batch-size N) against one at a time (--batch-size 1), the whole command run in this process (planning, the
unrefined and refined files written and decoded, the curves), and how far batching moves the results: per image,
the refined file's bpp, PSNR and true loss of the batched run against the one-at-a-time run, beside what another
noise seed moves them by (one at a time, --seed 1).

    python bench/evaluate_throughput.py                                  # this CPU, small crops
    python bench/evaluate_throughput.py --device cuda --images 12 --height 512 --width 768 --json-only

On a CPU `evaluate` refines every image alone, whatever --batch-size (docs/cli.md, "Batches"), so there the two runs
do the same work; bench/batch_invariance_cost.py measures what a batch would gain. The one-at-a-time runs take the
first --baseline-images of the images (their pairs per second are a rate, so a subset measures it); the two runs
alternate --repeats times, and every time is recorded. Writes bench/results/evaluate-throughput-<device>.json and
.md (the table).
"""
import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import device_name, slug
from refine_throughput import kodak_size_images

from sgaplus.cli import main as sgaplus
from sgaplus.files.images import write_png


def evaluate(paths, out, options, batch_size, seed=0):
    """Seconds of one `sgaplus evaluate` run (its printout swallowed) and its pairs {(point, image): row}."""
    arguments = ["evaluate", *map(str, paths), "--out", str(out), "--force", "--batch-size", str(batch_size),
                 "--seed", str(seed), *options]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as errors:
        status = sgaplus(arguments)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"sgaplus {' '.join(arguments)} failed ({status}): {errors.getvalue()[-500:]}")
    pairs = json.loads((out / "pairs.json").read_text())["pairs"]
    return seconds, {(row["point"], row["image"]): row for row in pairs}


def summary(runs, batch_size):
    """Every repeat's seconds and pairs per second; their median, and the fastest repeat's (on a shared machine,
    the one least slowed by other work)."""
    count = len(runs[-1][1])
    seconds = [s for s, _ in runs]
    return {"batch_size": batch_size, "images": count // len({point for point, _ in runs[-1][1]}), "pairs": count,
            "seconds": seconds, "pairs_per_second": [count / s for s in seconds],
            "median_pairs_per_second": statistics.median(count / s for s in seconds),
            "best_pairs_per_second": count / min(seconds)}


def processes(paths, scratch, options, count, repeats):
    """Seconds of the batched evaluation as commands, start-up and imports included: one process with `count`
    threads against torchrun's `count` processes of one thread each (what it sets), alternating, `repeats` times."""
    commands = {"one_process": ([sys.executable, "-m", "sgaplus"], {"OMP_NUM_THREADS": str(count)}),
                "torchrun": ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                              f"--nproc_per_node={count}", "-m", "sgaplus"], {"OMP_NUM_THREADS": "1"})}
    seconds = {name: [] for name in commands}
    for _ in range(repeats):
        for name, (command, threads) in commands.items():
            start = time.perf_counter()
            subprocess.run([*command, "evaluate", *map(str, paths), "--out", str(scratch / name), "--force",
                            "--batch-size", str(len(paths)), *options], check=True, capture_output=True,
                           env={**os.environ, **threads})
            seconds[name].append(time.perf_counter() - start)
    pairs = len(paths) * len(options[options.index("--qualities") + 1:options.index("--no-compile")])
    return {"processes": count, "pairs": pairs, "seconds": seconds,
            "fastest_pairs_per_second": {name: pairs / min(times) for name, times in seconds.items()}}


def moved(reference, other, folders):
    """Per field, the largest and mean relative change of the other run's refined figures from the reference's
    (the pairs both have), and how many files are byte-identical."""
    keys = sorted(set(reference) & set(other))
    report = {}
    for field in ("bpp", "psnr", "loss"):
        changes = [abs(other[k]["refined"][field] / reference[k]["refined"][field] - 1) for k in keys]
        report[f"refined_{field}_percent"] = {"max": 100 * max(changes), "mean": 100 * statistics.mean(changes)}
    for kind in ("base", "refined"):
        report[f"identical_{kind}_files"] = sum(
            (folders[0] / reference[k][kind]["file"]).read_bytes() == (folders[1] / other[k][kind]["file"]).read_bytes()
            for k in keys)
    report["pairs"] = len(keys)
    return report


def table(report):
    lines = [f"# evaluate throughput ({report['device']}, torch {report['torch']}, {report['date']})", "",
             f"{report['images']} images {report['image_size']}, rate points {', '.join(report['qualities'])} of the "
             f"bundled mbt2018-mean, {report['iterations']} iterations (fast preset otherwise, not compiled); "
             f"load average {report['load_average_at_start']:.1f} at the start, {report['load_average_at_end']:.1f} "
             f"at the end. {report['note']}", "",
             "| run | batch size | images | pairs | seconds (each repeat) | pairs/s (median) | pairs/s (fastest) |",
             "|---|---|---|---|---|---|---|"]
    for name in ("batched", "one_at_a_time"):
        run = report[name]
        lines.append(f"| {name.replace('_', ' ')} | {run['batch_size']} | {run['images']} | {run['pairs']} | "
                     f"{', '.join(f'{s:.1f}' for s in run['seconds'])} | {run['median_pairs_per_second']:.3f} | "
                     f"{run['best_pairs_per_second']:.3f} |")
    lines += ["", f"speed-up of batching: {report['speedup']:.2f}x (medians), {report['speedup_fastest']:.2f}x "
              f"(fastest repeats)", "",
              "| refined files compared | pairs | max / mean change of bpp | of PSNR | of true loss | identical base "
              "files | identical refined files |", "|---|---|---|---|---|---|---|"]
    for name, label in (("batched_vs_one_at_a_time", "batched vs one at a time (seed 0)"),
                        ("seed_1_vs_seed_0", "one at a time: seed 1 vs seed 0")):
        if name in report:
            m = report[name]
            changes = [f"{m[f'refined_{f}_percent']['max']:.2f}% / {m[f'refined_{f}_percent']['mean']:.2f}%"
                       for f in ("bpp", "psnr", "loss")]
            lines.append(f"| {label} | {m['pairs']} | {' | '.join(changes)} | {m['identical_base_files']} | "
                         f"{m['identical_refined_files']} |")
    if "processes" in report:
        run = report["processes"]
        lines += ["", f"The batched run as commands (start-up and imports included), {run['pairs']} pairs: seconds "
                  f"of each repeat, one process with {run['processes']} threads: "
                  f"{', '.join(f'{s:.1f}' for s in run['seconds']['one_process'])}; torchrun, {run['processes']} "
                  f"processes of one thread: {', '.join(f'{s:.1f}' for s in run['seconds']['torchrun'])}"]
    return "\n".join(lines) + "\n"


def parse():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8, help="same-size crops of the shipped images")
    parser.add_argument("--baseline-images", type=int, default=4, help="of them, refined one at a time")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--qualities", nargs="+", default=["1", "2"], help="bundled mbt2018-mean qualities")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-seed-spread", dest="seed_spread", action="store_false",
                        help="skip the one-at-a-time run with another seed")
    parser.add_argument("--processes", type=int, help="also time the batched run as `python -m sgaplus` with this many "
                        "threads against torchrun with this many processes")
    parser.add_argument("--json-only", action="store_true", help="write no .md table")
    parser.add_argument("--note", default="", help="said next to the figures (the machine's load, say)")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return parser.parse_args()


def main():
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    options = ["--qualities", *args.qualities, "--no-compile", "--device", args.device]
    load_at_start = os.getloadavg()[0]  # the machine's other work, one-minute average
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        paths = [scratch / f"crop{i:02d}.png" for i in range(args.images)]
        for path, crop in zip(paths, kodak_size_images(args.images, args.height, args.width)):
            write_png(path, crop[None])
        evaluate(paths[:2], scratch / "warm-up", options + ["--iterations", "1"], 2)  # imports, first plot
        options += ["--iterations", str(args.iterations)]
        folders = {name: scratch / name for name in ("batched", "single", "seed1")}
        runs = {"batched": [], "single": []}
        for _ in range(args.repeats):  # interleaved, so that a busy spell of the machine slows both alike
            runs["batched"].append(evaluate(paths, folders["batched"], options, args.images))
            runs["single"].append(evaluate(paths[:args.baseline_images], folders["single"], options, 1))
        (batched, batched_pairs), (single, single_pairs) = ((summary(runs[name], size), runs[name][-1][1])
                                                            for name, size in (("batched", args.images), ("single", 1)))
        report = {"device": device_name(args.device), "torch": str(torch.__version__),
                  "load_average_at_start": load_at_start, "load_average_at_end": None,
                  "date": time.strftime("%Y-%m-%d"), "note": args.note, "images": args.images,
                  "image_size": f"{args.width}x{args.height}", "qualities": args.qualities,
                  "iterations": args.iterations, "batched": batched, "one_at_a_time": single,
                  "speedup": batched["median_pairs_per_second"] / single["median_pairs_per_second"],
                  "speedup_fastest": batched["best_pairs_per_second"] / single["best_pairs_per_second"],
                  "batched_vs_one_at_a_time": moved(single_pairs, batched_pairs,
                                                    (folders["single"], folders["batched"]))}
        if args.processes:
            report["processes"] = processes(paths, scratch, options, args.processes, args.repeats)
        if args.seed_spread:
            _, seed1_pairs = evaluate(paths[:args.baseline_images], folders["seed1"], options, 1, seed=1)
            report["seed_1_vs_seed_0"] = moved(single_pairs, seed1_pairs, (folders["single"], folders["seed1"]))
    report["load_average_at_end"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"evaluate-throughput-{slug(report['device'])}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    if not args.json_only:
        path.with_suffix(".md").write_text(table(report))
    print(table(report))
    print(f"wrote {path}" + ("" if args.json_only else f" and {path.with_suffix('.md')}"))


if __name__ == "__main__":
    main()
