"""Fixed-seed refinements give the results recorded in tests/data/refine_golden.json: every check's metrics,
the steps each image was kept, stopped or flagged at, its final lambda, and sums of the best latents, over
scenarios that reach each branch of the loop (methods, baselines, early stopping, a rate target, a non-finite
image, a context model, a codec without z). The record was written by the refiner before its loop was
reshaped, so the reshaped loop is checked against the old one; `python tests/test_refine_golden.py` writes it
anew after a deliberate change of behaviour.

The tolerance is float rounding only (1e-9 relative): on the machine that wrote the record the comparison is exact.
"""
import json
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from helpers import PoisonedCodec, bundled_codec, sample_crop

import sgaplus
from sgaplus.target import RateTarget

GOLDEN = Path(__file__).resolve().parent / "data" / "refine_golden.json"
SCENARIOS = {
    "ssl": dict(method="ssl", iterations=30, check_every=5),
    "linear-3-other-lambda": dict(method="linear", classes=3, lmbda=0.0067, iterations=20, check_every=4),
    "uniform": dict(method="uniform", iterations=20, check_every=10),
    "ste": dict(method="ste", iterations=20, check_every=10),
    "base": dict(method="base"),
    "early-stop": dict(method="ssl", iterations=80, check_every=5, flat_second_image=True,
                       early_stopping=sgaplus.EarlyStopping(patience=2, min_delta=0.02)),
    "target": dict(method="ssl", iterations=30, check_every=5, target=RateTarget([0.3, 0.5])),
    "non-finite": dict(method="ssl", iterations=30, check_every=5, poison=(1, 12)),
    "context": dict(architecture="mbt2018", method="ssl", iterations=20, check_every=5),
    "no-z": dict(architecture="bmshj2018-factorized", method="cosine", iterations=20, check_every=5),
}


def images(flat_second_image=False):
    textured = sample_crop(64, top=100, left=180)
    second = torch.full_like(textured, 0.5) if flat_second_image else sample_crop(64, name="coffee", top=200, left=300)
    return torch.cat([textured, second])


def run(name):
    """A JSON-ready summary of one scenario's result."""
    options = dict(SCENARIOS[name])
    codec = bundled_codec(architecture=options.pop("architecture", "mbt2018-mean"))
    poison, x = options.pop("poison", None), images(options.pop("flat_second_image", False))
    if poison is not None:
        codec = PoisonedCodec(codec, *poison)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sgaplus.LatentRefiner(codec, seed=7, **options).refine(x)
    latents = {"y_hat": result.y_hat, "z_hat": result.z_hat, "x_hat": result.x_hat}
    return {"history": result.history, "best_step": result.best_step, "stopped_step": result.stopped_step,
            "nonfinite_step": result.nonfinite_step, "lmbda": result.lmbda, "base": vars(result.base),
            "best": vars(result.best),
            "sums": {key: None if value is None else value.double().flatten(1).sum(1).tolist()
                     for key, value in latents.items()}}


def assert_same(actual, expected, where):
    if isinstance(expected, dict):
        assert set(actual) == set(expected), where
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), f"{where}: {actual!r} is not NaN"
    elif isinstance(expected, float) and not isinstance(actual, int):
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_fixed_seed_refinement_gives_the_recorded_result(name):
    expected = json.loads(GOLDEN.read_text())[name]
    assert_same(json.loads(json.dumps(run(name))), expected, name)


def test_the_record_reaches_every_branch():
    """Negative control for a vacuous record: the scenarios stop, flag and move lambda somewhere."""
    record = json.loads(GOLDEN.read_text())
    assert set(record) == set(SCENARIOS)
    first, last = sorted(record["early-stop"]["stopped_step"])  # one image leaves while the other refines
    assert first < last < SCENARIOS["early-stop"]["iterations"]
    assert record["non-finite"]["nonfinite_step"][1] is not None
    assert record["target"]["lmbda"][0] != record["target"]["lmbda"][1]
    assert record["no-z"]["sums"]["z_hat"] is None and max(h["sweeps"] for h in record["context"]["history"]) > 0
    assert record["ssl"]["best"]["loss"] != record["ssl"]["base"]["loss"]


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps({name: run(name) for name in SCENARIOS}, indent=1) + "\n")
    print(f"wrote {GOLDEN}", file=sys.stderr)
