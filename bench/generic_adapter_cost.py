"""What the generic adapter's relaxation costs (docs/codecs.md, "The cost"): one SSL refinement step (relaxed pass,
loss, backward) of CompressAI's mbt2018-mean and cheng2020-anchor-checkerboard, untrained at their larger zoo sizes
and update()'d, on a 512x768 image, through their dedicated adapters and forced through the generic adapter (its
shared samples' sort and search, its interception of every torch operation). The two alternate, repeat after repeat,
so that a busy machine slows both alike; medians are reported with the machine named.

    python bench/generic_adapter_cost.py [--repeats 7] [--out bench/results/generic-adapter-cost.json]
"""
import argparse
import datetime
import json
import statistics
import time
from pathlib import Path

import torch
from machine import device_name

from sgaplus.codecs import registry
from sgaplus.codecs.forward import ForwardCodec
from sgaplus.refine.refiner import LatentRefiner

IMAGE = (512, 768)
MODELS = {"mbt2018-mean": {"N": 192, "M": 320}, "cheng2020-anchor-checkerboard": {"N": 192}}
TAU = 0.5


def codecs(name):
    """(dedicated, generic) codecs of one untrained model."""
    torch.manual_seed(0)
    model = registry.model_class(name)(**MODELS[name]).eval()
    model.update(force=True)
    return registry.adapter_for_class(type(model))(model, name, 0.01), ForwardCodec(model, "generic", 0.01)


def step(codec, x):
    """A function running one relaxed step (forward, loss, backward) on x."""
    refiner = LatentRefiner(codec, "ssl", iterations=1)
    batch = refiner._start(x)
    y, z = batch.y.detach().requires_grad_(True), batch.z.detach().requires_grad_(True)

    def run():
        z_hat = refiner._relaxed(z, codec.z_offsets(), TAU, torch.tensor(3))
        y_hat, entropy, _ = codec.y_latents(y, z_hat, lambda v, o, stream=0: refiner._relaxed(
            v, o, TAU, torch.tensor(5), stream))
        refiner._rd_loss(x, x.shape[-2:], y_hat, z_hat, entropy)[0].sum().backward()
    return run


def measure(name, repeats):
    x = torch.rand(1, 3, *IMAGE, generator=torch.Generator().manual_seed(0))
    runs = dict(zip(("dedicated", "generic"), map(lambda codec: step(codec, x), codecs(name))))
    times = {kind: [] for kind in runs}
    for repeat in range(repeats + 1):  # the first of each is a warm-up
        for kind, run in runs.items():
            start = time.perf_counter()
            run()
            if repeat:
                times[kind].append(time.perf_counter() - start)
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    return {"seconds": times, "median": medians, "overhead": medians["generic"] / medians["dedicated"] - 1}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="bench/results/generic-adapter-cost.json")
    args = parser.parse_args()
    report = {"machine": device_name(), "date": datetime.date.today().isoformat(), "image": IMAGE,
              "models": {name: measure(name, args.repeats) for name in MODELS}}
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    for name, result in report["models"].items():
        print(f"{name}: dedicated {result['median']['dedicated']:.3f} s, generic {result['median']['generic']:.3f} s "
              f"a step ({100 * result['overhead']:+.1f}%), {report['machine']}")


if __name__ == "__main__":
    main()
