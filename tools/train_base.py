"""Train the bundled mean-scale hyperprior checkpoints (sgaplus/assets) on images skimage ships.

    python tools/train_base.py --quality 2 --steps 5000                 # from scratch
    python tools/train_base.py --quality 1 --steps 2000 --init-from 2   # fine-tune from quality 2

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

from sgaplus.checkpoints import save_checkpoint
from sgaplus.codecs.loading import ASSETS, load_bundled
from sgaplus.images import EVAL_IMAGES, TRAIN_IMAGES, load_shipped_image

LAMBDAS = {1: 0.0035, 2: 0.0067, 3: 0.0130, 4: 0.0250}
ARCHITECTURE, N, M = "mbt2018-mean", 48, 64


def random_crops(images, size, batch, rng):
    """A batch of random size x size crops with random flips, as float tensors in [0, 1]."""
    crops = []
    for _ in range(batch):
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
    parser.add_argument("--quality", type=int, choices=sorted(LAMBDAS), required=True)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--init-from", type=int, choices=sorted(LAMBDAS), help="start from this bundled quality")
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
    args.work.mkdir(parents=True, exist_ok=True)
    state_path = args.work / f"q{args.quality}.pt"

    images = [load_shipped_image(name).to(device) for name in TRAIN_IMAGES]
    if args.init_from is not None:
        model, _ = load_bundled(args.init_from)
    else:
        from sgaplus.codecs.registry import build_model
        model = build_model(ARCHITECTURE, N, M)
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
        lr = args.lr if step < 0.8 * args.steps else args.lr / 5
        for group in optimizer.param_groups:
            group["lr"] = lr
        x = random_crops(images, args.crop, args.batch, rng)
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

    name = f"{ARCHITECTURE}-N{N}-M{M}-q{args.quality}.pt"
    info = {"lmbda": lmbda, "steps": args.steps, "init_from": args.init_from, "note": args.note, "lr": args.lr,
            "batch": args.batch, "crop": args.crop, "train_images": list(TRAIN_IMAGES),
            "eval_images_held_out": list(EVAL_IMAGES), "augmentation": "random crops, horizontal/vertical flips",
            "train_seconds": round(elapsed), "device": torch.cuda.get_device_name() if device == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {args.threads} threads)",
            "torch": str(torch.__version__), "date": time.strftime("%Y-%m-%d")}
    ASSETS.mkdir(exist_ok=True)
    save_checkpoint(model.cpu().eval(), ASSETS / name, ARCHITECTURE, N, M, info)
    index_path = ASSETS / "models.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[str(args.quality)] = {"file": name, "architecture": ARCHITECTURE, "N": N, "M": M, **info}
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    print(f"wrote {ASSETS / name}")


if __name__ == "__main__":
    main()
