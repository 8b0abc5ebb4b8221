"""Refinement throughput: the straightforward loop (one image at a time, eager, float32, the paper's way)
against batched refinement with each combination of speed switches in VARIANTS, on Kodak-size crops
of the shipped images, in one run.

    python bench/refine_throughput.py                          # 24 images x 2000 iterations, all variants
    python bench/refine_throughput.py --variants batched,bf16-cl-graphs --baseline-images 2

The baseline refines --baseline-images of the images one by one (its per-image time is the same for
every image, so the whole set's time is extrapolated from them); each variant refines all of them.
Writes bench/results/refine-throughput-<device>.json (images/second, total time, speed-up over the
baseline and the mean final true loss, also over the images the baseline refined) and a bar plot.
"""
import argparse
import json
import time
from pathlib import Path

import torch
from machine import device_name, slug

from sgaplus.files.images import EVAL_IMAGES, TRAIN_IMAGES, load_shipped_image
from sgaplus.files.loading import load_codec
from sgaplus.refine.refiner import LatentRefiner


def kodak_size_images(count, height, width):
    """count crops of height x width from the shipped images (cycled, shifted on each cycle)."""
    sources = [load_shipped_image(n) for n in TRAIN_IMAGES + EVAL_IMAGES]
    sources = [s for s in sources if s.shape[1] >= height and s.shape[2] >= width] or sources
    crops = []
    for i in range(count):
        image = sources[i % len(sources)]
        top = (i // len(sources) * 37) % max(1, image.shape[1] - height + 1)
        left = (i // len(sources) * 53) % max(1, image.shape[2] - width + 1)
        crop = image[:, top:top + height, left:left + width]
        if crop.shape[1:] != (height, width):  # too small a source: pad by replication
            crop = torch.nn.functional.pad(crop[None], (0, width - crop.shape[2], 0, height - crop.shape[1]),
                                           mode="replicate")[0]
        crops.append(crop)
    return torch.stack(crops)


def timed_refine(refiner, batch, device, seed):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = refiner.refine(batch.to(device), seed=seed)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result.best.loss


# batched variants: LatentRefiner switches (every variant refines --batch images at a time)
VARIANTS = {
    "batched": {},
    "bf16": {"autocast": "bfloat16"},
    "bf16-cl": {"autocast": "bfloat16", "channels_last": True},
    "bf16-cl-compile": {"autocast": "bfloat16", "channels_last": True, "compile": True},
    "bf16-cl-graphs": {"autocast": "bfloat16", "channels_last": True, "cuda_graphs": True},
    "tf32-graphs": {"tf32": True, "cuda_graphs": True},
}


def variant_names(text):
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(unknown) or '(none)'}; "
                                         f"valid: {', '.join(VARIANTS)}")
    return names


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = ["baseline"] + list(report["variants"])
    rates = [report["baseline"]["images_per_second"]] + [v["images_per_second"] for v in report["variants"].values()]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 3.8))
    bars = ax.bar(names, rates, color=["gray"] + ["tab:blue"] * (len(names) - 1))
    for bar, rate in zip(bars, rates):
        ax.annotate(f"{rate / rates[0]:.1f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom")
    ax.set_ylabel("images / second")
    ax.margins(y=0.15)
    ax.set_title(f"{report['images']} images {report['image_size']} x {report['iterations']} iterations, "
                 f"{report['device']}")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--baseline-images", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--variants", type=variant_names, default=list(VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)} (default: all; the *graphs "
                             f"ones need CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.device != "cuda" and any(VARIANTS[name].get("cuda_graphs") for name in args.variants):
        parser.error("the *graphs variants need --device cuda")
    images = kodak_size_images(args.images, args.height, args.width)
    codec = load_codec().to(args.device)

    plain = LatentRefiner(codec, "ssl", iterations=args.iterations, progress=True)
    baseline_time, baseline_loss = 0.0, []
    for i in range(args.baseline_images):
        seconds, loss = timed_refine(plain, images[i:i + 1], args.device, seed=i)
        baseline_time += seconds
        baseline_loss += loss
    per_image = baseline_time / args.baseline_images
    report = {
        "device": device_name(args.device),
        "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d"), "model": codec.model_id,
        "images": args.images, "image_size": f"{args.width}x{args.height}", "iterations": args.iterations,
        "batch": args.batch,
        "baseline": {"images_timed": args.baseline_images, "seconds_per_image": per_image,
                     "seconds_for_all_extrapolated": per_image * args.images, "images_per_second": 1 / per_image,
                     "mean_true_loss": sum(baseline_loss) / len(baseline_loss)},
        "variants": {},
    }
    for name in args.variants:
        refiner = LatentRefiner(codec, "ssl", iterations=args.iterations, progress=True, **VARIANTS[name])
        seconds, losses = 0.0, []
        for start in range(0, args.images, args.batch):  # compile time, if any, is counted: users pay it
            elapsed, loss = timed_refine(refiner, images[start:start + args.batch], args.device, seed=start)
            seconds += elapsed
            losses += loss
        report["variants"][name] = {
            "switches": VARIANTS[name], "seconds": seconds, "images_per_second": args.images / seconds,
            "speedup": per_image * args.images / seconds,
            "mean_true_loss_same_images": sum(losses[:args.baseline_images]) / args.baseline_images,
            "mean_true_loss": sum(losses) / len(losses)}
        print(name, json.dumps(report["variants"][name]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"refine-throughput-{slug(report['device'])}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, path.with_suffix(".png"))
    print(json.dumps(report, indent=1))
    print(f"wrote {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
