"""Test setup and shared fixtures. Without CUDA, Triton kernels run on CPU tensors through the Triton
interpreter (the compile test builds them for real GPU targets in a subprocess without it)."""
import os
import sys

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first import of triton

import pytest  # noqa: E402
from helpers import KERNEL_DEVICE, bundled_codec, sample_crop  # noqa: E402


def pytest_collection_finish(session):
    """Start the compile test's compiler runs (minutes of CPU) as soon as the suite is collected, so that they run
    beside the other tests instead of after them."""
    module = sys.modules.get("test_kernels_compile")
    if module is not None and any(item.path.name == "test_kernels_compile.py" and "compiles" in item.name
                                  for item in session.items):
        module.compiling()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device(backend):
    """The device a backend's tests run on: the kernels' (CUDA, or CPU through the interpreter), or CPU."""
    return KERNEL_DEVICE if backend == "triton" else "cpu"


@pytest.fixture
def codec():
    """The default bundled codec (loaded once per session)."""
    return bundled_codec()


@pytest.fixture
def crop():
    """sample_crop(size, name, top, left): a (1, 3, H, W) crop of a shipped sample image."""
    return sample_crop


def zoo_url(architecture, quality, metric="mse"):
    from compressai.zoo.image import model_urls
    from compressai.zoo.image_vbr import model_urls as vbr_urls
    return vbr_urls[architecture][metric] if quality is None else model_urls[architecture][metric][quality]


@pytest.fixture
def zoo_cache(tmp_path, monkeypatch):
    """place(architecture, quality, state_dict, metric="mse"): put weights where torch.hub's cache looks."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(url, *args, **kwargs):
        raise AssertionError(f"the test tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)

    def place(architecture, quality, state_dict, metric="mse"):
        folder = tmp_path / "torch" / "hub" / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(state_dict, folder / zoo_url(architecture, quality, metric).rsplit("/", 1)[1])
    return place
