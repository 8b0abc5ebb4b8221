"""The `sgaplus` command end to end in a temporary folder, and its one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import sample_crop
from PIL import Image

from sgaplus.cli import main


def save_png(path, x=None, mode="RGB"):
    array = (sample_crop((64, 96)) if x is None else x)[0].mul(255).round().byte().permute(1, 2, 0).numpy()
    image = Image.fromarray(array)
    if mode == "I;16":
        image = Image.fromarray((array[..., 0].astype(np.uint16) * 257))
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path)
    return path


@pytest.fixture
def images(tmp_path):
    return [save_png(tmp_path / "one.png"), save_png(tmp_path / "two.png", sample_crop((64, 96), top=200))]


def run_cli(*args):
    return main([str(a) for a in args])


def test_refine_then_decode(tmp_path, images, capsys):
    out = tmp_path / "out"
    assert run_cli("refine", *images, "--iterations", 30, "--check-every", 5, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "one.png" in printed and "wrote 2 bitstreams" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"].startswith("bundled:") and len(metrics["images"]) == 2
    for row, source in zip(metrics["images"], images):
        assert row["file_bytes"] == (out / f"{source.stem}.bin").stat().st_size
        # refinement found better latents than the codec's own (best_step 0 would mean it did not)
        assert row["refined"]["loss"] < 0.995 * row["base"]["loss"] and row["best_step"] > 0
        # the reported PSNR is the written file's: its 8-bit reconstruction against the input
        decoded = np.asarray(Image.open(out / f"{source.stem}.png"), dtype=np.float64) / 255
        original = np.asarray(Image.open(source), dtype=np.float64) / 255
        assert 10 * np.log10(1 / np.mean((decoded - original) ** 2)) == pytest.approx(row["refined"]["psnr"], abs=0.05)
    assert (out / "metrics.csv").read_text().count("\n") == 3
    decoded = tmp_path / "decoded.png"
    assert run_cli("decode", out / "one.bin", "--out", decoded) == 0
    assert np.array_equal(np.asarray(Image.open(decoded)), np.asarray(Image.open(out / "one.png")))


def test_outputs_are_not_overwritten_without_force(tmp_path, images, capsys):
    out = tmp_path / "out"
    assert run_cli("refine", images[0], "--iterations", 2, "--out", out) == 0
    before = (out / "one.bin").read_bytes()
    assert run_cli("refine", images[0], "--iterations", 2, "--out", out, "--seed", 5) == 1
    assert "pass --force" in capsys.readouterr().err
    assert (out / "one.bin").read_bytes() == before
    assert run_cli("refine", images[0], "--iterations", 2, "--out", out, "--force") == 0


@pytest.mark.parametrize("kind,message", [
    ("missing", "no such image file"),
    ("text", "not an image file"),
    ("L", "grayscale image"),
    ("RGBA", "RGB with alpha image"),
    ("I;16", "16-bit image"),
])
def test_bad_images_get_one_line_errors(tmp_path, capsys, kind, message):
    path = tmp_path / "bad.png"
    if kind == "text":
        path.write_text("hello")
    elif kind != "missing":
        save_png(path, mode=kind)
    assert run_cli("refine", path, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content,message", [
    (b"garbage", "not a readable checkpoint"),
    ("foreign", "not an sgaplus checkpoint"),
])
def test_bad_checkpoints_get_one_line_errors(tmp_path, images, capsys, content, message):
    path = tmp_path / "model.pt"
    if content == "foreign":
        torch.save({"state_dict": {}}, path)
    else:
        path.write_bytes(content)
    assert run_cli("refine", images[0], "--checkpoint", path, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_bitstreams_get_one_line_errors(tmp_path, images, capsys):
    out = tmp_path / "out"
    assert run_cli("refine", images[0], "--iterations", 2, "--out", out) == 0
    data = bytearray((out / "one.bin").read_bytes())
    data[20] ^= 0xFF
    (tmp_path / "corrupt.bin").write_bytes(bytes(data))
    assert run_cli("decode", tmp_path / "corrupt.bin", "--out", tmp_path / "x.png") == 1
    assert "checksum" in capsys.readouterr().err
    assert run_cli("decode", images[0], "--out", tmp_path / "x.png") == 1
    assert "not an sgaplus bitstream" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sgaplus.cli", "decode", str(tmp_path / "none.bin"), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("sgaplus: error:") and "Traceback" not in proc.stderr


def test_zoo_weights_that_cannot_be_fetched_get_a_clear_error(tmp_path, images, capsys, monkeypatch):
    """No download in tests: the zoo loader is made to fail as it does offline."""
    import urllib.error

    import compressai.zoo

    def offline(**kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setitem(compressai.zoo.models, "mbt2018-mean", offline)
    assert run_cli("refine", images[0], "--model", "mbt2018-mean", "--quality", 2, "--out", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "could not fetch CompressAI's mbt2018-mean q2 weights" in err and "Traceback" not in err
