"""Refining a set of images into files: batching same-size images, refine-and-encode, and the metrics
tables (terminal table, metrics.json, metrics.csv)."""
import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import torch

from .bitstream import encode
from .images import write_atomic

FIELDS = ("loss", "bpp", "psnr")


def make_batches(images, batch_size):
    """Same-size images in input order, in chunks of at most batch_size; each chunk refines as one batch."""
    groups = defaultdict(list)
    for index, (name, x) in enumerate(images):
        groups[tuple(x.shape[-2:])].append((index, name, x))
    return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def refine_batch(batch, codec, refiner, device, seed):
    """Refine one batch; a (input index, metrics row, bitstream bytes) per image."""
    size = tuple(batch[0][2].shape[-2:])
    result = refiner.refine(torch.cat([x for _, _, x in batch]).to(device), seed=seed)
    streams = encode(codec, result.y_hat, result.z_hat, size)
    return [(index, {"image": name, "height": size[0], "width": size[1], "base": result.base.row(i),
                     "refined": result.best.row(i), "best_step": result.best_step[i], "file_bytes": len(streams[i]),
                     "file_bpp": 8 * len(streams[i]) / (size[0] * size[1])}, streams[i])
            for i, (index, name, _) in enumerate(batch)]


def averages(rows, key):
    return {f: sum(r[key][f] for r in rows) / len(rows) for f in FIELDS}


def table(rows):
    lines = [f"{'image':24s} {'base bpp':>9s} {'psnr':>7s} {'loss':>8s} | {'refined bpp':>11s} {'psnr':>7s} "
             f"{'loss':>8s} | {'file bpp':>8s}"]
    for r in rows:
        b, f = r["base"], r["refined"]
        lines.append(f"{Path(r['image']).name[:24]:24s} {b['bpp']:9.4f} {b['psnr']:7.3f} {b['loss']:8.4f} | "
                     f"{f['bpp']:11.4f} {f['psnr']:7.3f} {f['loss']:8.4f} | {r['file_bpp']:8.4f}")
    return "\n".join(lines)


def write_metrics(out, rows, codec, refiner, args):
    summary = {"model": codec.model_id, "lmbda": refiner.lmbda, "method": args.method, "classes": args.classes,
               "iterations": args.iterations, "images": rows,
               "average": {"base": averages(rows, "base"), "refined": averages(rows, "refined"),
                           "file_bpp": sum(r["file_bpp"] for r in rows) / len(rows)}}
    write_atomic(out / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["image", "width", "height"] + [f"{k}_{f}" for k in ("base", "refined") for f in FIELDS]
                    + ["file_bytes", "file_bpp"])
    for r in rows:
        writer.writerow([r["image"], r["width"], r["height"]] + [r[k][f] for k in ("base", "refined") for f in FIELDS]
                        + [r["file_bytes"], r["file_bpp"]])
    write_atomic(out / "metrics.csv", buffer.getvalue().encode())
