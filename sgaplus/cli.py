"""The `sgaplus` command: refine images into bitstreams, decode bitstreams, and a one-minute demo."""
import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

from . import distributed, pipeline
from .bitstream import BitstreamError, decode
from .checkpoints import CheckpointError
from .codecs import registry
from .codecs.loading import codec_for_id, load_codec
from .images import EVAL_IMAGES, ImageError, load_shipped_image, read_rgb, write_atomic, write_png
from .refine import BASELINES, SGA_METHODS, LatentRefiner
from .schedule import TemperatureSchedule

USER_ERRORS = (ImageError, CheckpointError, BitstreamError, FileExistsError, ValueError, OSError)


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _add_model_args(parser):
    group = parser.add_argument_group("model (default: the bundled mean-scale hyperprior)")
    group.add_argument("--model", choices=registry.architectures(),
                       help="CompressAI zoo architecture (downloads weights)")
    group.add_argument("--quality", type=int, help="zoo quality 1-8, or bundled model quality (default: middle)")
    group.add_argument("--checkpoint", type=Path, help="an sgaplus checkpoint file (see tools/train_base.py)")


def _add_refine_args(parser):
    group = parser.add_argument_group("refinement")
    group.add_argument("--method", default="ssl", choices=SGA_METHODS + BASELINES)
    group.add_argument("--classes", type=int, default=2, choices=(2, 3))
    group.add_argument("--a", type=float, help="ssl shape (default 2.3 for 2 classes, 1.4 for 3)")
    group.add_argument("--r", type=float, help="three-class factor (default 0.98)")
    group.add_argument("--n", type=float, help="three-class power (default 1.5)")
    group.add_argument("--iterations", type=int, default=2000)
    group.add_argument("--lr", type=float, default=5e-3)
    group.add_argument("--lmbda", type=float, help="RD trade-off (default: the model's training lambda)")
    group.add_argument("--tau-max", type=float, default=1.0)
    group.add_argument("--rate", type=float, default=1e-3, help="temperature decay rate")
    group.add_argument("--check-every", type=int, default=10, help="steps between true-loss checks")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    group.add_argument("--autocast", choices=("bfloat16", "float16"), help="codec convolutions under autocast")
    group.add_argument("--channels-last", action="store_true", help="image and latents in channels_last format")
    group.add_argument("--compile", action="store_true", help="torch.compile the relaxed loss")
    group.add_argument("--cuda-graphs", action="store_true",
                       help="compile the relaxed loss with mode='reduce-overhead' (CUDA graphs; CUDA only)")
    group.add_argument("--tf32", choices=("on", "off"),
                       help="float32 convolutions of the relaxed steps on TF32 tensor cores, or not "
                            "(default: torch's setting)")


def _refiner(args, codec):
    return LatentRefiner(codec, args.method, args.classes, a=args.a, r=args.r, n=args.n,
                         iterations=args.iterations, lr=args.lr, lmbda=args.lmbda,
                         schedule=TemperatureSchedule(rate=args.rate, tau_max=args.tau_max),
                         check_every=args.check_every, seed=args.seed, progress=True, autocast=args.autocast,
                         channels_last=args.channels_last, compile=args.compile, cuda_graphs=args.cuda_graphs,
                         tf32=None if args.tf32 is None else args.tf32 == "on")


def _refuse_overwrite(paths, force):
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"would overwrite {', '.join(existing)} (pass --force to allow)")


def cmd_refine(args):
    """Refine, write outputs; under torchrun each rank takes every world-th batch and rank 0 reports."""
    sources = [Path(p) for p in args.images]
    stems = [p.stem for p in sources]
    if len(set(stems)) != len(stems):
        raise ValueError("two input images share a file name; refine them into separate --out folders")
    out = Path(args.out)
    targets = [out / f"{s}{ext}" for s in stems for ext in (".bin", ".png")] + [out / "metrics.json",
                                                                                 out / "metrics.csv"]
    _refuse_overwrite(targets, args.force)
    images = [(str(p), read_rgb(p)) for p in sources]  # every input checked before any work
    rank, world, device = distributed.setup(args.device)
    codec = load_codec(args.model, args.quality, args.checkpoint).to(device)
    refiner = _refiner(args, codec)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    batches = pipeline.make_batches(images, args.batch_size)
    for number in range(rank, len(batches), world):  # a batch's seed follows its place, not its rank
        for index, row, stream in pipeline.refine_batch(batches[number], codec, refiner, device, args.seed + number):
            stem = Path(row["image"]).stem
            write_atomic(out / f"{stem}.bin", stream)
            x_hat, _ = decode(stream, lambda model_id: codec)  # the PNG is what the decoder reads back
            write_png(out / f"{stem}.png", x_hat)
            rows.append((index, row))
    rows = distributed.gather(rows, world)
    distributed.finish(world)
    if rank == 0:
        rows = [row for _, row in sorted(rows, key=lambda item: item[0])]
        pipeline.write_metrics(out, rows, codec, refiner, args)
        print(pipeline.table(rows))
        print(f"wrote {len(rows)} bitstreams, reconstructions and metrics to {out}"
              + (f" ({world} processes)" if world > 1 else ""))
    return 0


def cmd_decode(args):
    target = Path(args.out)
    _refuse_overwrite([target], args.force)
    data = Path(args.file).read_bytes()
    x_hat, model_id = decode(data, lambda model_id: codec_for_id(model_id, args.checkpoint))
    write_png(target, x_hat)
    print(f"decoded {args.file} ({model_id}, {x_hat.shape[-1]}x{x_hat.shape[-2]}) to {target}")
    return 0


def cmd_demo(args):
    """Refine a crop of a held-out sample image with the bundled model and print base vs refined."""
    image = load_shipped_image(args.image)
    x = image[:, :args.crop, :args.crop].unsqueeze(0)
    codec = load_codec(quality=args.quality).to(args.device)
    refiner = _refiner(args, codec)
    start = time.time()
    [(_, row, stream)] = pipeline.refine_batch([(0, args.image, x)], codec, refiner, args.device, args.seed)
    print(f"{args.image} {args.crop}x{args.crop} crop, model {codec.model_id} (lambda {refiner.lmbda}), "
          f"{args.method} for {args.iterations} iterations in {time.time() - start:.1f} s on {args.device}")
    print(pipeline.table([row]))
    gain = 100 * (row["base"]["loss"] - row["refined"]["loss"]) / row["base"]["loss"]
    print(f"true RD loss {row['base']['loss']:.4f} -> {row['refined']['loss']:.4f} ({gain:.1f}% lower); "
          f"bitstream {len(stream)} bytes")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="sgaplus", description="SGA+ latent refinement for learned image codecs")
    sub = parser.add_subparsers(dest="command", required=True)
    refine = sub.add_parser("refine", help="refine images and write bitstreams, reconstructions and metrics")
    refine.add_argument("images", nargs="+", metavar="IMAGE")
    refine.add_argument("--out", default="sgaplus_out", help="output folder (default: sgaplus_out)")
    refine.add_argument("--force", action="store_true", help="overwrite existing outputs")
    refine.add_argument("--batch-size", type=positive_int, default=8, help="same-size images refined together")
    _add_model_args(refine)
    _add_refine_args(refine)
    refine.set_defaults(func=cmd_refine)
    dec = sub.add_parser("decode", help="decode a bitstream to a PNG")
    dec.add_argument("file", metavar="FILE.bin")
    dec.add_argument("--out", required=True, metavar="IMAGE.png")
    dec.add_argument("--checkpoint", type=Path, help="the checkpoint the bitstream was made with, if not bundled")
    dec.add_argument("--force", action="store_true")
    dec.set_defaults(func=cmd_decode)
    demo = sub.add_parser("demo", help="refine a shipped sample image with the bundled model (about a minute)")
    demo.add_argument("--image", default=EVAL_IMAGES[0], choices=EVAL_IMAGES)
    demo.add_argument("--crop", type=int, default=256)
    _add_refine_args(demo)
    demo.add_argument("--quality", type=int, help="bundled model quality (default: middle)")
    demo.set_defaults(func=cmd_demo, iterations=300)
    return parser


def main(argv=None):
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")  # raised inside compressai
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"sgaplus: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
