"""The repository's top-level kernels/ folder installs as sgaplus.kernels: a wheel built from the project's files
alone (what a clean clone holds) carries the kernels, and the package imported from that wheel finds and runs them."""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def project_files():
    """The files a clean clone holds: tracked and untracked-but-not-ignored ones."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [name for name in listed if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to know the project's files")
    clone = tmp_path_factory.mktemp("clone")
    for name in project_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(clone)], check=True, capture_output=True)
    [built] = dist.glob("sgaplus-*.whl")
    return built


def test_the_wheel_carries_the_kernels_as_a_subpackage(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sgaplus/kernels/__init__.py", "sgaplus/kernels/rounding.py", "sgaplus/kernels/scores.py"} <= names
    assert "sgaplus/assets/models.json" in names
    assert not any(name.startswith("kernels/") for name in names), "kernels/ must not install as a top-level package"


def test_the_package_installed_from_the_wheel_runs_its_kernels(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    code = ("import torch, sgaplus, sgaplus.kernels.rounding as rounding\n"
            "y = torch.linspace(-2, 2, 4096)\n"
            "out = sgaplus.sga_round(y, 0.5, backend='triton', seed=3)\n"
            "assert out.shape == y.shape and torch.isfinite(out).all() and not torch.equal(out, y)\n"
            "print(sgaplus.__file__); print(rounding.__file__)")
    env = dict(os.environ, PYTHONPATH=str(site), TRITON_INTERPRET="1")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    package, kernels = run.stdout.split()
    assert Path(package).is_relative_to(site) and Path(kernels) == site / "sgaplus" / "kernels" / "rounding.py"


def test_the_project_fits_one_device_call():
    """The GPU machine takes a working tree of at most 64 MiB per call (wheels carried included): the project's own
    files stay under 60 MiB (bundled checkpoints can be stored at half size: checkpoints.save_checkpoint)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to know the project's files")
    assert sum((ROOT / name).stat().st_size for name in project_files()) < 60 * 2 ** 20
