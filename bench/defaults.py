"""The measurements the refiner's defaults are chosen from (docs/refinement.md, "Presets"), on this machine:

    python bench/defaults.py presets       # every bundled architecture x the unseen images: paper preset vs the fast
                                           # candidates, final true loss per image and time
    python bench/defaults.py compile       # per architecture: eager vs compiled seconds per step, compile time
    python bench/defaults.py checks        # per architecture: a true-loss check's cost against a relaxed step
    python bench/defaults.py paper-loop    # the paper's loop written plainly vs the paper preset vs the default

Writes bench/results/defaults-<command>.{json,md}. --images, --crop, --iterations-scale (a fraction of every
iteration count, for a quick trial), --architectures and --settings narrow a run.
"""
import argparse
import json
import math
import time
from pathlib import Path

import torch
from machine import device_name
from timing import timed

from sgaplus.files.images import UNSEEN_IMAGES, load_shipped_image
from sgaplus.files.loading import bundled_architectures, load_codec
from sgaplus.refine import presets
from sgaplus.refine.refiner import LatentRefiner, pad_to_multiple
from sgaplus.refine.schedule import schedule_preset

# the fast preset's candidates: (name, iterations, schedule, lr, other LatentRefiner options); "fast" is
# presets.PRESETS["fast"]
CANDIDATES = [("fast-1000", 1000, "budget", 2e-2, {}),
              ("fast-400", 400, "budget", 2e-2, {}),
              ("fast-300", 300, "budget", 3e-2, {}),
              ("fast-250", 250, "budget", 3e-2, {}),
              ("fast-300-3c", 300, "budget", 3e-2, {"classes": 3}),
              ("fast-500-bf16", 500, "budget", 2e-2, {"autocast": "bfloat16"}),
              ("fast-300-bf16", 300, "budget", 3e-2, {"autocast": "bfloat16"})]
TOLERANCE = 0.003  # the fast preset may end at most 0.3% above the paper preset's true loss


def crops(names, side):
    """A batch of side x side centre crops of the named images."""
    out = []
    for name in names:
        image = load_shipped_image(name)
        top, left = (image.shape[1] - side) // 2, (image.shape[2] - side) // 2
        out.append(image[:, top:top + side, left:left + side])
    return torch.stack(out)


def settings(name, scale):
    """(iterations, schedule name, lr, other options) of a preset or a candidate, iterations scaled."""
    if name in presets.PRESETS:
        preset = presets.PRESETS[name]
        entry = (preset.iterations, preset.schedule, preset.lr, {})
    else:
        entry = next(candidate[1:] for candidate in CANDIDATES if candidate[0] == name)
    return max(1, round(entry[0] * scale)), *entry[1:]


def refine(codec, x, name, scale, device, **extra):
    iterations, schedule, lr, options = settings(name, scale)
    refiner = LatentRefiner(codec, "ssl", iterations=iterations, lr=lr, schedule=schedule_preset(schedule, iterations),
                            **options, **extra)
    seconds, result = timed(lambda: refiner.refine(x.to(device)), device)
    return {"iterations": iterations, "schedule": schedule, "lr": lr, "options": str(options or ""),
            "seconds": seconds, "loss": result.best.loss, "base_loss": result.base.loss}


def recorded_paper_runs(path, args):
    """The paper preset's runs per architecture from an earlier presets JSON of the same images and crop."""
    record = json.loads(Path(path).read_text())
    if record["images"] != args.images or record["crop"] != args.crop:
        raise SystemExit(f"{path} holds other images or another crop ({record['images']}, {record['crop']})")
    keys = ("iterations", "schedule", "lr", "seconds", "loss", "base_loss")
    return {row["architecture"]: {**{k: row[k] for k in keys}, "options": "", "recorded": str(path)}
            for row in record["rows"] if row["preset"] == "paper"}


def cmd_presets(args):
    x = crops(args.images, args.crop)
    recorded = {} if args.paper_from is None else recorded_paper_runs(args.paper_from, args)
    rows = []
    for architecture in args.architectures:
        codec = load_codec(bundled=architecture).to(args.device)
        runs = {"paper": recorded[architecture]} if architecture in recorded else {}
        runs.update({name: refine(codec, x, name, args.iterations_scale, args.device) for name in args.settings
                     if name not in runs})
        paper = runs["paper"]["loss"]
        for name, run in runs.items():
            ratios = [mine / theirs for mine, theirs in zip(run["loss"], paper)]
            rows.append({"architecture": architecture, "preset": name, **run,
                         "vs_paper_percent": [100 * (r - 1) for r in ratios],
                         "mean_vs_paper_percent": 100 * (sum(ratios) / len(ratios) - 1),
                         "worst_vs_paper_percent": 100 * (max(ratios) - 1),
                         "within_tolerance": max(ratios) <= 1 + TOLERANCE})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def cmd_compile(args):
    x = crops(args.images[:1], args.crop)
    rows = []
    for architecture in args.architectures:
        codec = load_codec(bundled=architecture).to(args.device)
        row = {"architecture": architecture}
        for name, compiled in (("eager", False), ("compiled", True)):
            refiner = LatentRefiner(codec, "ssl", compile=compiled)
            batch = refiner._start(x.to(args.device))
            tau = torch.full((), 0.5, dtype=torch.float64)

            def step():
                loss, _ = refiner._loss_of(batch.x, batch.y, batch.z, tau, torch.tensor([1, 2]), None, None)
                loss.sum().backward()

            row[f"{name}_first_s"], _ = timed(step, args.device)
            row[f"{name}_step_s"], _ = timed(step, args.device, args.repeats)
        row["compile_s"] = row["compiled_first_s"] - row["compiled_step_s"]
        row["saved_per_step_s"] = row["eager_step_s"] - row["compiled_step_s"]
        row["steps_to_pay"] = math.inf if row["saved_per_step_s"] <= 0 else row["compile_s"] / row["saved_per_step_s"]
        row["pixel_steps_to_pay"] = row["steps_to_pay"] * x.shape[-2] * x.shape[-1]  # presets.COMPILE_MIN_PIXEL_STEPS
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cmd_checks(args):
    x = crops(args.images, args.crop).to(args.device)
    rows = []
    for architecture in args.architectures:
        codec = load_codec(bundled=architecture).to(args.device)
        refiner = LatentRefiner(codec, "ssl")
        batch = refiner._start(x)
        refiner._check(batch)  # the first check: a context model's centres
        generator = torch.Generator(device=x.device).manual_seed(0)
        step_s, _ = timed(lambda: refiner._step(batch, 0.5, generator), args.device, args.repeats)
        check_s, _ = timed(lambda: refiner._check(batch), args.device, args.repeats)
        rows.append({"architecture": architecture, "step_s": step_s, "check_s": check_s, "check_per_step": check_s /
                     step_s, **{f"overhead_at_{every}_percent": 100 * check_s / (every * step_s)
                                for every in (5, 10, 20, 50)}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def paper_loop(codec, x, iterations, lr=5e-3):
    """The SGA+ paper's refinement loop written plainly: one image, eager, the readable rounding (stack, Gumbel,
    softmax) from the reference, the SGA+ schedule, and the true loss evaluated at every iteration, keeping the
    lowest. Returns (seconds, the lowest true loss)."""
    from sgaplus.ops.rounding import RoundingConfig
    from sgaplus.ops.rounding.reference import sga_round_reference
    from sgaplus.refine.schedule import TemperatureSchedule
    config, schedule, pixels = RoundingConfig("ssl"), TemperatureSchedule(), x.shape[-2] * x.shape[-1]
    start = time.perf_counter()
    with torch.no_grad():
        y = codec.analysis(pad_to_multiple(x, codec.multiple))
        z = codec.hyper_analysis(y)
    y, z = y.requires_grad_(), z.requires_grad_()
    optimizer = torch.optim.Adam([y, z], lr=lr)
    medians = codec.z_offsets()

    def loss_of(z_hat, round_y, clamp):
        scales, means = codec.hyper_synthesis(z_hat, y.shape)
        y_hat = round_y(y, means)
        x_hat = codec.synthesis(y_hat)[..., :x.shape[-2], :x.shape[-1]]
        x_hat = x_hat.clamp(0, 1) if clamp else x_hat
        bits = codec.bits(y_hat, z_hat, (scales, means))
        return codec.lmbda * 255 ** 2 * ((x_hat - x) ** 2).mean() + bits.sum() / pixels

    best = math.inf
    for step in range(iterations):
        tau = schedule(step)
        z_tilde = sga_round_reference(z - medians, tau, config) + medians
        loss = loss_of(z_tilde, lambda v, m: sga_round_reference(v, tau, config, means=m), clamp=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            z_hat = torch.round(z - medians) + medians
            best = min(best, loss_of(z_hat, lambda v, m: torch.round(v - m) + m, clamp=True).item())
    return time.perf_counter() - start, best


def cmd_paper_loop(args):
    codec = load_codec(bundled="mbt2018-mean")
    x = crops(args.images[:1], args.crop)
    iterations = max(1, round(2000 * args.iterations_scale))
    seconds, loss = paper_loop(codec, x, iterations)
    rows = [{"run": "the paper's loop", "iterations": iterations, "seconds": seconds, "loss": loss}]
    for name in dict.fromkeys(("paper", presets.DEFAULT_PRESET, "fast")):
        run = refine(codec, x, name, args.iterations_scale, args.device)
        rows.append({"run": f"sgaplus, preset {name}", "iterations": run["iterations"], "seconds": run["seconds"],
                     "loss": run["loss"][0]})
    for row in rows:
        row["seconds_per_iteration"] = row["seconds"] / row["iterations"]
        row["time_vs_paper_loop"] = row["seconds"] / rows[0]["seconds"]
        row["loss_vs_paper_loop_percent"] = 100 * (row["loss"] / rows[0]["loss"] - 1)
        print(json.dumps(row), flush=True)
    return rows


COMMANDS = {"presets": cmd_presets, "compile": cmd_compile, "checks": cmd_checks, "paper-loop": cmd_paper_loop}


def markdown(command, meta, rows):
    keys = [k for k in rows[0] if not isinstance(rows[0][k], list)]
    lines = [f"# defaults: {command} ({meta['device']}, torch {meta['torch']}, {meta['date']})", "",
             f"images: {', '.join(meta['images'])} ({meta['crop']}x{meta['crop']} centre crops)", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys)
                     + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--images", nargs="+", default=list(UNSEEN_IMAGES))
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--architectures", nargs="+", default=list(bundled_architectures()))
    parser.add_argument("--iterations-scale", type=float, default=1.0)
    parser.add_argument("--settings", nargs="+", default=["paper", "fast"] + [c[0] for c in CANDIDATES],
                        choices=list(presets.PRESETS) + [c[0] for c in CANDIDATES],
                        help="presets: the settings compared, the paper preset first")
    parser.add_argument("--paper-from", type=Path, help="presets: the paper preset's losses from this earlier "
                        "presets JSON (same images and crop) instead of running it")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = COMMANDS[args.command](args)
    meta = {"command": args.command, "device": device_name(args.device), "torch": str(torch.__version__),
            "date": time.strftime("%Y-%m-%d"), "images": args.images, "crop": args.crop,
            "iterations_scale": args.iterations_scale}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"defaults-{args.command}"
    path.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=1, default=str) + "\n")
    path.with_suffix(".md").write_text(markdown(args.command, meta, rows))
    print(f"wrote {path}.json, .md")


if __name__ == "__main__":
    main()
