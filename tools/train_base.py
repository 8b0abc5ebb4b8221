"""Train the bundled checkpoints (sgaplus/assets) on images skimage ships.

    python tools/train_base.py --quality 2 --steps 5000                          # mbt2018-mean from scratch
    python tools/train_base.py --quality 1 --steps 2000 --init-from mbt2018-mean:q2  # fine-tune
    python tools/train_base.py --architecture mbt2018 --quality 3 --init-from mbt2018-mean:q3
      # a context model warm-started from the weights it shares with the mean-scale model (same names, shapes)

Resumable: the training state is saved every --save-every steps under --work; running the same
command again continues from there. The finished model goes to sgaplus/assets/ with a record of
how it was trained (steps, lambda, data, time, device) in sgaplus/assets/models.json.
"""
import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sgaplus.files.checkpoints import save_checkpoint
from sgaplus.files.images import EVAL_IMAGES, GRAYSCALE_TRAIN_IMAGES, TRAIN_IMAGES, load_shipped_image
from sgaplus.files.loading import ASSETS, bundled_key, load_bundled

LAMBDAS = {1: 0.0035, 2: 0.0067, 3: 0.0130, 4: 0.0250}
# (N, M) of the bundles; Cheng et al.'s models have M = N
SIZES = {"bmshj2018-factorized": (48, 64), "bmshj2018-hyperprior": (48, 64), "mbt2018-mean": (48, 64),
         "mbt2018": (48, 64), "cheng2020-anchor": (48, 48), "cheng2020-attn": (48, 48),
         "elic2022-chandelier": (48, 96)}
# the model classes' other constructor arguments: ELIC's uneven channel groups, scaled down with M
OPTIONS = {"elic2022-chandelier": {"groups": [8, 8, 16, 32, 32]}}
# the entropy coders' buffers: CompressAI's load_state_dict needs them and resizes them
CODER_TABLES = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
COLOUR_SHARE = 0.75  # of the crops, the rest from the grayscale images (as three equal channels)


def random_crops(colour, gray, size, batch, rng):
    """A batch of random size x size crops with random flips (COLOUR_SHARE of them from colour images), as float
    tensors in [0, 1]."""
    crops = []
    for _ in range(batch):
        images = colour if rng.random() < COLOUR_SHARE else gray
        image = images[rng.randrange(len(images))]
        h, w = image.shape[1:]
        top, left = rng.randrange(h - size + 1), rng.randrange(w - size + 1)
        crop = image[:, top:top + size, left:left + size]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        if rng.random() < 0.5:
            crop = crop.flip(-2)
        crops.append(crop)
    return torch.stack(crops)


def rd_loss(out, x, lmbda):
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values()) / pixels
    mse = torch.mean((out["x_hat"] - x) ** 2)
    return lmbda * 255 ** 2 * mse + bpp, bpp, mse


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", choices=sorted(SIZES), default="mbt2018-mean")
    parser.add_argument("--quality", type=int, choices=sorted(LAMBDAS), required=True)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--init-from", metavar="ARCHITECTURE:qQ",
                        help="start from this bundled model's weights (those whose names and shapes match)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--work", type=Path, default=Path("tools/train_state"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--note", help="free text recorded with the checkpoint (e.g. earlier training stages)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lmbda = LAMBDAS[args.quality]
    architecture, (N, M) = args.architecture, SIZES[args.architecture]
    args.work.mkdir(parents=True, exist_ok=True)
    state_path = args.work / f"{architecture}-q{args.quality}.pt"

    colour = [load_shipped_image(name).to(device) for name in TRAIN_IMAGES]
    gray = [load_shipped_image(name).to(device) for name in GRAYSCALE_TRAIN_IMAGES]
    from sgaplus.codecs.registry import build_model
    model = build_model(architecture, N, M, OPTIONS.get(architecture))
    if args.init_from is not None:
        source_architecture, _, source_quality = args.init_from.partition(":q")
        source, _ = load_bundled(source_architecture, int(source_quality))
        own = model.state_dict()
        shared = {k: v for k, v in source.state_dict().items()
                  if k in own and (own[k].shape == v.shape or k.rsplit(".", 1)[-1] in CODER_TABLES)}
        model.load_state_dict(shared, strict=False)
        print(f"initialised {len(shared)} of {len(own)} tensors from {args.init_from}")
    model = model.to(device).train()
    aux_params = [p for name, p in model.named_parameters() if name.endswith(".quantiles")]
    main_params = [p for name, p in model.named_parameters() if not name.endswith(".quantiles")]
    optimizer = torch.optim.Adam(main_params, lr=args.lr)
    aux_optimizer = torch.optim.Adam(aux_params, lr=1e-3)
    step, elapsed, rng = 0, 0.0, random.Random(args.quality)
    torch.manual_seed(args.quality)
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        aux_optimizer.load_state_dict(state["aux_optimizer"])
        step, elapsed = state["step"], state["elapsed"]
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming q{args.quality} at step {step}")

    def save_state():
        tmp = state_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "aux_optimizer": aux_optimizer.state_dict(), "step": step, "elapsed": elapsed,
                    "rng": rng.getstate(), "torch_rng": torch.get_rng_state()}, tmp)
        tmp.replace(state_path)

    bar = tqdm(total=args.steps, initial=step, desc=f"q{args.quality} lambda={lmbda}")
    while step < args.steps:
        start = time.time()
        lr = args.lr * (0.55 + 0.45 * np.cos(np.pi * step / args.steps))  # cosine from lr down to lr / 10
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = random_crops(colour, gray, args.crop, args.batch, rng)
        loss, bpp, mse = rd_loss(model(x), x, lmbda)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        optimizer.step()
        aux_optimizer.zero_grad()
        model.aux_loss().backward()
        aux_optimizer.step()
        step += 1
        elapsed += time.time() - start
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", bpp=f"{bpp.item():.3f}",
                        psnr=f"{10 * np.log10(1 / max(mse.item(), 1e-10)):.2f}")
        if step % args.save_every == 0 or step == args.steps:
            save_state()
    bar.close()

    name = f"{architecture}-N{N}-M{M}-q{args.quality}.pt"
    info = {"lmbda": lmbda, "steps": args.steps, "init_from": args.init_from, "note": args.note, "lr": args.lr,
            "lr_schedule": "cosine to lr/10", "batch": args.batch, "crop": args.crop,
            "train_images": list(TRAIN_IMAGES), "grayscale_train_images": list(GRAYSCALE_TRAIN_IMAGES),
            "colour_share": COLOUR_SHARE, "eval_images_held_out": list(EVAL_IMAGES),
            "augmentation": "random crops, horizontal/vertical flips",
            "train_seconds": round(elapsed), "device": torch.cuda.get_device_name() if device == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {args.threads} threads)",
            "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d")}
    ASSETS.mkdir(exist_ok=True)
    save_checkpoint(model.cpu().eval(), ASSETS / name, architecture, N, M, info, OPTIONS.get(architecture))
    index_path = ASSETS / "models.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[bundled_key(architecture, args.quality)] = {"file": name, "architecture": architecture,
                                                      "quality": args.quality, "N": N, "M": M,
                                                      "options": OPTIONS.get(architecture, {}), **info}
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    print(f"wrote {ASSETS / name}")


if __name__ == "__main__":
    main()
