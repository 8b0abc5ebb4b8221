"""Op-level speed: eager reference vs torch.compile of it vs the fused op (pytest-benchmark)."""
import pytest
import torch
from registry import ALL_CONFIGS, CONTENDERS, DEVICE, HEADLINE_CONFIGS, KODAK, SIZES, config, rounding_fn, synchronize

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def run_case(benchmark, contender, cfg_name, size, dtype_name, passes, suite="op"):
    cfg = config(cfg_name)
    fn = rounding_fn(contender, cfg)
    y = (torch.randn(size, device=DEVICE) * 3).to(DTYPES[dtype_name]).requires_grad_(passes == "fwd+bwd")
    grad = torch.randn_like(y)

    def step():
        out = fn(y)
        if passes == "fwd+bwd":
            out.backward(grad)
            y.grad = None
        synchronize(DEVICE)

    if contender == "compile":  # compile time excluded from the timing, but recorded
        import time
        start = time.perf_counter()
        step()
        benchmark.extra_info["compile_seconds"] = round(time.perf_counter() - start, 2)
    step()
    benchmark.extra_info.update(suite=suite, contender=contender, config=cfg_name, size=size, dtype=dtype_name,
                                passes=passes, device=DEVICE)
    benchmark.group = f"{suite} {cfg_name} {dtype_name} {passes} n={size}"
    benchmark.pedantic(step, rounds=5 if DEVICE == "cpu" else 20, warmup_rounds=1)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("passes", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("cfg_name", HEADLINE_CONFIGS)
def test_speed(benchmark, contender, cfg_name, size, dtype_name, passes):
    run_case(benchmark, contender, cfg_name, size, dtype_name, passes)


@pytest.mark.parametrize("contender", CONTENDERS)
@pytest.mark.parametrize("cfg_name", ALL_CONFIGS)
def test_all_methods(benchmark, contender, cfg_name):
    run_case(benchmark, contender, cfg_name, KODAK, "float32", "fwd+bwd", suite="methods")
