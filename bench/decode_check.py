"""What reading every file back costs, and how far a file's decoded image lies from the refiner's reconstruction, for
every architecture sgaplus refines (docs/cli.md, "What a file decodes to"). Per architecture, two held-out images
refined as one batch: a relaxed step, encoding and decoding (the check) per image; whether the batch's files are the
files of each image coded alone; the largest |decoded - refiner's reconstruction| coded in the batch, coded with one
thread and decoded with two, and coded without oneDNN's convolutions. Writes bench/results/decode-check-<device>.json
and .md.

    python bench/decode_check.py                       # the 13 architectures at 256x256 on the CPU
    python bench/decode_check.py --size 128 --architectures mbt2018-mean mbt2018
"""
import argparse
import contextlib
import json
import time
from pathlib import Path

import torch
from machine import device_name, slug
from timing import timed

from sgaplus.codecs import registry
from sgaplus.decoded_files import DECODE_TOLERANCE
from sgaplus.files.bitstream import decode, encode
from sgaplus.files.images import EVAL_IMAGES, load_shipped_image
from sgaplus.files.loading import bundled_architectures, load_codec
from sgaplus.refine.presets import refiner_options

STAND_IN = {"N": 64, "M": 64, "options": {"elic2022-official": {"groups": [8, 8, 16, 16, 16]},
                                          "elic2022-chandelier": {"groups": [8, 8, 16, 16, 16]}}}
STEPS = 20  # relaxed steps refined before encoding: latents the refiner moved


def codec_of(architecture):
    """The bundled model of the architecture, else an untrained one of STAND_IN's size (a variable-rate one at its
    middle level)."""
    if architecture in bundled_architectures():
        return load_codec(bundled=architecture)
    torch.manual_seed(0)
    model = registry.build_model(architecture, STAND_IN["N"], STAND_IN["M"], STAND_IN["options"].get(architecture))
    model.update(force=True)
    return registry.adapter(architecture)(model, f"untrained:{architecture}", 0.01)


def gaps(codec, result, size, encoding):
    """The largest |decoded - refiner's reconstruction| of the batch's files, encoded inside `encoding`."""
    with encoding():
        streams = encode(codec, result.y_hat, result.z_hat, size)
    return max((decode(s, lambda model_id: codec)[0] - result.x_hat[i:i + 1]).abs().max().item()
               for i, s in enumerate(streams))


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def measure(architecture, size, repeats):
    from sgaplus.refine.refiner import LatentRefiner
    codec = codec_of(architecture)
    x = torch.cat([load_shipped_image(name)[:, :size, :size].unsqueeze(0) for name in EVAL_IMAGES])
    options = {**refiner_options("fast"), "iterations": STEPS, "check_every": STEPS}
    start = time.perf_counter()
    result = LatentRefiner(codec, "ssl", **options).refine(x)
    step_s = (time.perf_counter() - start) / STEPS / len(x)
    encode_s, streams = timed(lambda: encode(codec, result.y_hat, result.z_hat, (size, size)), "cpu", repeats)
    decode_s, _ = timed(lambda: [decode(s, lambda model_id: codec) for s in streams], "cpu", repeats)
    alone = [encode(codec, result.y_hat[i:i + 1], None if result.z_hat is None else result.z_hat[i:i + 1],
                    (size, size))[0] for i in range(len(x))]
    return {"architecture": architecture, "model": codec.model_id, "size": size, "images": len(x),
            "relaxed_step_s": step_s, "encode_s": encode_s / len(x), "decode_s": decode_s / len(x),
            "check_share_of_fast_preset": decode_s / len(x) / (500 * step_s + encode_s / len(x)),
            "batch_files_equal_alone": alone == streams,
            "gap_batched": gaps(codec, result, (size, size), torch.no_grad),
            "gap_one_thread_encoder": gaps(codec, result, (size, size), one_thread),
            "gap_without_onednn_encoder": gaps(codec, result, (size, size),
                                               lambda: torch.backends.mkldnn.flags(enabled=False))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--architectures", nargs="+", default=registry.architectures())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    rows = []
    for architecture in args.architectures:
        rows.append(measure(architecture, args.size, args.repeats))
        print(json.dumps(rows[-1]), flush=True)
    device = device_name("cpu")
    meta = {"device": device, "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
            "tolerance": DECODE_TOLERANCE, "rows": rows,
            "note": f"per image; encode and decode: medians of --repeats runs; a relaxed step: the mean of {STEPS}; "
                    f"the check's share: decoding against 500 relaxed steps and encoding (the fast preset)"}
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"decode-check-{slug(device)}"
    (args.out / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    lines = [f"# Reading every file back ({device}, torch {torch.__version__}, {meta['date']})", "",
             f"Two held-out {args.size}x{args.size} crops refined as one batch ({STEPS} SSL steps); per image.", "",
             "| model | relaxed step | encode | decode (the check) | check / fast preset | batch = alone | "
             "gap batched | gap 1-thread encoder | gap no-oneDNN encoder |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['relaxed_step_s']:.3f} s | {r['encode_s']:.3f} s | {r['decode_s']:.3f} s | "
                     f"{100 * r['check_share_of_fast_preset']:.2f}% | {r['batch_files_equal_alone']} | "
                     f"{r['gap_batched']:.1e} | {r['gap_one_thread_encoder']:.1e} | "
                     f"{r['gap_without_onednn_encoder']:.1e} |")
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
