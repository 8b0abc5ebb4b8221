"""Refinement throughput: the straightforward loop (one image at a time, eager, float32, the paper's way)
against batched refinement with the speed switches, on Kodak-size crops of the shipped images.

    python bench/refine_throughput.py                                   # 24 images x 2000 iterations
    python bench/refine_throughput.py --baseline-images 4 --autocast bfloat16 --channels-last --compile

The baseline refines --baseline-images of the images one by one (its per-image time is the same for
every image, so the whole set's time is extrapolated from them); the batched run refines all of them.
Writes bench/results/refine-throughput-<device>.json with images/second, total times and the mean final
true loss of the images both runs refined.
"""
import argparse
import json
import time
from pathlib import Path

import torch

from sgaplus.checkpoints import load_codec
from sgaplus.images import EVAL_IMAGES, TRAIN_IMAGES, load_shipped_image
from sgaplus.refine import LatentRefiner


def kodak_size_images(count, height, width):
    """count crops of height x width from the shipped images (cycled, shifted on each cycle)."""
    sources = [torch.from_numpy(load_shipped_image(n)).permute(2, 0, 1).float().div(255)
               for n in TRAIN_IMAGES + EVAL_IMAGES]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--baseline-images", type=int, default=24)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--autocast", choices=("bfloat16", "float16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    images = kodak_size_images(args.images, args.height, args.width)
    codec = load_codec().to(args.device)

    plain = LatentRefiner(codec, "ssl", iterations=args.iterations, progress=True)
    baseline_time, baseline_loss = 0.0, []
    for i in range(args.baseline_images):
        seconds, loss = timed_refine(plain, images[i:i + 1], args.device, seed=i)
        baseline_time += seconds
        baseline_loss += loss
    fast = LatentRefiner(codec, "ssl", iterations=args.iterations, progress=True, autocast=args.autocast,
                         channels_last=args.channels_last, compile=args.compile)
    fast_time, fast_loss = 0.0, []
    for start in range(0, args.images, args.batch):
        seconds, loss = timed_refine(fast, images[start:start + args.batch], args.device, seed=start)
        fast_time += seconds
        fast_loss += loss
    per_image = baseline_time / args.baseline_images
    report = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d"), "model": codec.model_id,
        "images": args.images, "image_size": f"{args.width}x{args.height}", "iterations": args.iterations,
        "switches": {"batch": args.batch, "autocast": args.autocast, "channels_last": args.channels_last,
                     "compile": args.compile},
        "baseline": {"images_timed": args.baseline_images, "seconds_per_image": per_image,
                     "seconds_for_all_extrapolated": per_image * args.images,
                     "mean_true_loss": sum(baseline_loss) / len(baseline_loss)},
        "batched": {"seconds": fast_time, "images_per_second": args.images / fast_time,
                    "mean_true_loss_same_images": sum(fast_loss[:args.baseline_images]) / args.baseline_images,
                    "mean_true_loss": sum(fast_loss) / len(fast_loss)},
        "speedup": per_image * args.images / fast_time,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = report["device"].lower().replace(" ", "-")
    path = args.out / f"refine-throughput-{name}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
