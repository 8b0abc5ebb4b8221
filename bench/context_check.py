"""What a true-loss check costs on a context model: the encoder's hard latents by the parallel fixed point (from a
cold start and from the previous check's latents, as the refiner runs it) against the serial computation, next to
one relaxed refinement step. Writes bench/results/context-check-<device>.{json,md}.

    python bench/context_check.py                       # bundled context models, held-out images, CPU
    python bench/context_check.py --sizes 256 384 --device cuda
"""
import argparse
import json
import time
from pathlib import Path

import torch
from machine import device_name, slug
from timing import timed

from sgaplus.codecs import registry
from sgaplus.files.images import EVAL_IMAGES, load_shipped_image
from sgaplus.files.loading import bundled_architectures, load_codec
from sgaplus.refine.refiner import LatentRefiner


def measure(codec, x, device, repeats):
    """Seconds of: a cold and a warm parallel check, the serial computation, and one relaxed step; the sweeps."""
    refiner = LatentRefiner(codec, "ssl", iterations=20, check_every=20, lr=2e-2)
    refined = refiner.refine(x)  # a refinement state: latents the refiner moved
    generator = torch.Generator().manual_seed(0)

    def noise(scale):
        return scale * torch.randn(refined.y_hat.shape, generator=generator).to(device)

    with torch.no_grad():
        y = refined.y_hat + noise(0.3)  # continuous latents near the refined ones
        z_hat = refined.z_hat
        cold, (_, _, _, cold_sweeps) = timed(lambda: codec.encoder_y(y, z_hat), device, repeats)
        start = codec.encoder_y(y, z_hat)[0]
        moved = y + noise(0.05)  # about what 10 Adam steps at lr 5e-3 move a latent: the next check's y
        warm, (_, _, _, warm_sweeps) = timed(lambda: codec.encoder_y(moved, z_hat, start=start), device, repeats)
        hyper = codec.hyper_synthesis(z_hat, y.shape)
        serial, _ = timed(lambda: [codec.serial_y(y[i:i + 1], hyper[i:i + 1]) for i in range(y.shape[0])], device,
                          1)
    y_leaf, z_leaf = y.clone().requires_grad_(), z_hat.clone().requires_grad_()
    means = codec.gaussian_parameters(hyper, y)[1]

    def step():
        loss, _ = refiner.relaxed_loss(x, y_leaf, z_leaf, 0.5, torch.tensor([1, 2], device=device), None, means)
        loss.sum().backward()

    relaxed, _ = timed(step, device, repeats)
    return {"check_cold_s": cold, "sweeps_cold": cold_sweeps, "check_warm_s": warm, "sweeps_warm": warm_sweeps,
            "serial_s": serial, "relaxed_step_s": relaxed, "positions": y.shape[-2] * y.shape[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 384])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    architectures = [a for a in bundled_architectures() if registry.adapter(a).context_model]
    rows = []
    for architecture in architectures:
        codec = load_codec(bundled=architecture).to(args.device)
        for size in args.sizes:
            x = torch.cat([load_shipped_image(name)[:, :size, :size].unsqueeze(0) for name in EVAL_IMAGES])
            row = {"codec": codec.model_id, "images": len(EVAL_IMAGES), "size": size,
                   **measure(codec, x.to(args.device), args.device, args.repeats)}
            rows.append(row)
            print(json.dumps(row))
    device = device_name(args.device)
    name = "cpu" if args.device == "cpu" else slug(device)
    meta = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "rows": rows,
            "note": "medians of --repeats runs; the serial computation once; batch = the held-out images"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"context-check-{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    lines = [f"# What a check costs on a context model ({device}, torch {torch.__version__}, {meta['date']})", "",
             "| codec | batch x size | y positions | check, cold (sweeps) | check, warm (sweeps) | serial | "
             "relaxed step |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['codec']} | {r['images']} x {r['size']}² | {r['positions']} | {r['check_cold_s']:.3f} s "
                     f"({r['sweeps_cold']}) | {r['check_warm_s']:.3f} s ({r['sweeps_warm']}) | {r['serial_s']:.2f} s "
                     f"| {r['relaxed_step_s']:.3f} s |")
    (args.out / f"context-check-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
