"""The `sgaplus` command end to end in a temporary folder, and its one-line errors."""
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import sample_crop
from PIL import Image

from sgaplus.cli import main
from sgaplus.refine import presets


def save_rgb16_png(path, height=8, width=12):
    """A 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    rows = np.random.default_rng(0).integers(0, 65535, (height, width, 3)).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def save_png(path, x=None, mode="RGB"):
    if mode == "RGB;16":
        return save_rgb16_png(path)
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
    ("RGB;16", "16-bit RGB image"),
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


def test_an_input_image_is_never_overwritten(tmp_path, images, capsys):
    before = images[0].read_bytes()
    for extra in ([], ["--force"]):
        assert run_cli("refine", images[0], "--iterations", 1, "--out", tmp_path, *extra) == 1
        err = capsys.readouterr().err
        assert "would replace the input image" in err and str(images[0]) in err
    assert images[0].read_bytes() == before


@pytest.mark.parametrize("args,message", [
    (["--device", "gpu0"], "unknown device 'gpu0'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--lr", "-1"], "lr must be a finite number > 0"),
    (["--model", "mbt2018-mean", "--quality", "9"], "qualities 1 to 8; got 9"),
    (["--bundled", "mbt2018-mean", "--model", "mbt2018"], "--bundled and --model both name a model; give one"),
    (["--bundled", "mbt2018-mean", "--quality", "7"], "no bundled mbt2018-mean model of quality 7"),
])
def test_bad_options_get_one_line_errors(tmp_path, images, capsys, args, message):
    assert run_cli("refine", images[0], "--out", tmp_path / "out", *args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(tmp_path, images, capsys):
    assert run_cli("refine", images[0], "--out", tmp_path / "out", "--device", "cuda") == 1
    assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_demo_crop_must_fit_the_image(capsys):
    assert run_cli("demo", "--crop", 1000, "--iterations", 1) == 1
    assert "--crop 1000 is larger than astronaut (512x512)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:  # argparse's own refusal: usage and one error line, status 2
        run_cli("demo", "--crop", 0)
    assert stop.value.code == 2 and "--crop: must be an integer >= 1" in capsys.readouterr().err


def test_output_paths_that_cannot_work_are_refused_before_any_work(tmp_path, images, capsys, monkeypatch):
    (tmp_path / "afile").write_text("x")
    assert run_cli("refine", images[0], "--out", tmp_path / "afile") == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    import sgaplus.decode_run as decode_run
    monkeypatch.setattr(decode_run, "decode", lambda *a, **k: pytest.fail("decoded before checking --out"))
    assert run_cli("decode", images[0], "--out", tmp_path / "nodir" / "x.png") == 1
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "nodir").exists()
    assert run_cli("decode", images[0], "--out", tmp_path) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_programming_error_keeps_its_traceback(tmp_path, images, monkeypatch):
    """Only the package's own errors become one line: a bare ValueError from a bug is not hidden."""
    from sgaplus import pipeline

    def broken(*args, **kwargs):
        raise ValueError("a bug, not the user's mistake")

    monkeypatch.setattr(pipeline, "refine_batch", broken)
    with pytest.raises(ValueError, match="a bug"):
        run_cli("refine", images[0], "--out", tmp_path / "out", "--iterations", 1)


def test_version_help_defaults_and_csv(tmp_path, images, capsys):
    with pytest.raises(SystemExit):
        run_cli("--version")
    from sgaplus import __version__
    assert capsys.readouterr().out.strip() == f"sgaplus {__version__}"
    with pytest.raises(SystemExit):
        run_cli("refine", "--help")
    shown = " ".join(capsys.readouterr().out.split())
    assert f"(default: {presets.DEFAULT_PRESET};" in shown and "(default: the preset's)" in shown
    out = tmp_path / "out"
    assert run_cli("refine", *images, "--iterations", 2, "--out", out) == 0
    bars = capsys.readouterr().err
    assert "ssl: one.png" in bars and "ssl: two.png" in bars  # the progress bar names the images
    csv_bytes = (out / "metrics.csv").read_bytes()
    assert b"\r\n" not in csv_bytes
    header = csv_bytes.decode().splitlines()[0].split(",")
    assert "base_mse" in header and "refined_mse" in header


def interrupt_on_call(monkeypatch, call_number):
    """pipeline.refine_batch raises KeyboardInterrupt on its call_number-th call; returns the call log."""
    from sgaplus import pipeline
    real, calls = pipeline.refine_batch, []

    def refine_batch(batch, *args, **kwargs):
        calls.append([name for _, name, _ in batch])
        if len(calls) == call_number:
            raise KeyboardInterrupt
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(pipeline, "refine_batch", refine_batch)
    return calls


def test_ctrl_c_stops_cleanly_and_resume_finishes_the_rest(tmp_path, images, capsys, monkeypatch):
    out = tmp_path / "out"
    common = ["--iterations", 2, "--batch-size", 1, "--out", out]
    interrupt_on_call(monkeypatch, 2)
    assert run_cli("refine", *images, *common) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 of 2 images finished" in err and "--resume" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json", "one.bin", "one.png"]
    assert json.loads((out / "metrics.json").read_text())["complete"] is False
    before = (out / "one.bin").read_bytes()
    assert run_cli("refine", *images, *common) == 1  # without --resume the outputs are protected
    assert "pass --force" in capsys.readouterr().err
    calls = interrupt_on_call(monkeypatch, 99)
    assert run_cli("refine", *images, *common, "--resume") == 0
    assert calls == [[str(images[1])]]  # only the unfinished image is refined again
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is True and [Path(r["image"]).name for r in metrics["images"]] == ["one.png", "two.png"]
    assert (out / "one.bin").read_bytes() == before
    assert run_cli("refine", *images, *common[:-2], "--out", out, "--resume", "--method", "atanh") == 1
    assert "cannot resume" in capsys.readouterr().err


def test_an_interrupt_while_writing_leaves_no_partial_files(tmp_path, images, monkeypatch, capsys):
    from sgaplus import pipeline

    def interrupted_png(path, x):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "write_png", interrupted_png)
    out = tmp_path / "out"
    assert run_cli("refine", images[0], "--iterations", 1, "--out", out) == 130
    assert [p.name for p in out.iterdir()] == []  # the .bin written before the PNG was removed again


def test_target_size_is_reached_or_reported_with_the_closest_file(tmp_path, images, capsys):
    """A reachable target gives a file within 2%; an unreachable one (or a budget too short for it) gives the closest
    file, says so and exits with status 3; the demo refuses a target."""
    out = tmp_path / "reachable"
    assert run_cli("refine", images[0], "--target-bytes", 410, "--out", out) == 0
    row = json.loads((out / "metrics.json").read_text())["images"][0]
    assert abs((out / "one.bin").stat().st_size / 410 - 1) <= 0.02 and abs(row["target_error_percent"]) <= 2
    assert row["target_met"] and "out of reach" not in capsys.readouterr().err
    out = tmp_path / "unreachable"
    assert run_cli("refine", images[0], "--target-bpp", 0.12, "--iterations", 20, "--out", out) == 3
    err = capsys.readouterr().err
    assert "target 0.1200 bpp out of reach" in err and "the closest file is" in err
    assert "1 of 1 images missed the target size by more than 2%" in err and "(exit status 3)" in err
    assert (out / "one.bin").exists()
    assert json.loads((out / "metrics.json").read_text())["images"][0]["target_met"] is False
    assert run_cli("demo", "--target-bpp", 0.5) == 1 and "a target size is refine's" in capsys.readouterr().err
    assert run_cli("refine", images[0], "--target-bpp", 0.01, "--out", tmp_path / "tiny") == 1
    assert "below the file's own overhead" in capsys.readouterr().err
    assert run_cli("refine", images[0], "--target-bpp", 0.5, "--early-stop", 5, "--out", tmp_path / "x") == 1
    assert "exclude each other" in capsys.readouterr().err


def test_rate_target_validation():
    from sgaplus.refine.target import RateTarget
    with pytest.raises(ValueError, match="target bpp must be a finite number > 0"):
        RateTarget(0.0)
    with pytest.raises(ValueError, match="2 target rates for 3 images"):
        RateTarget([0.5, 0.6]).per_image(3)
    goal = RateTarget(0.5).per_image(1)[0]
    assert goal.rank(0.505, 1.0) < goal.rank(0.52, 0.5)  # within 2% beats a lower distortion outside it
    assert goal.next_lmbda(0.01, 0.25, 0.01) > 0.01 > goal.next_lmbda(0.01, 0.75, 0.01)


def test_a_target_size_run_can_be_resumed(tmp_path, images, capsys, monkeypatch):
    """The model a target picks is not written back into the options, so --resume finds the same settings."""
    out = tmp_path / "out"
    common = ["--target-bpp", 0.5, "--iterations", 2, "--batch-size", 1, "--out", out]
    interrupt_on_call(monkeypatch, 2)
    assert run_cli("refine", *images, *common) == 130
    calls = interrupt_on_call(monkeypatch, 99)
    assert run_cli("refine", *images, *common, "--resume") in (0, 3)  # 3: two steps may miss the target size
    assert calls == [[str(images[1])]] and "cannot resume" not in capsys.readouterr().err


@pytest.mark.parametrize("architecture", ["mbt2018", "cheng2020-anchor"])
def test_a_bundled_context_model_refines_and_decodes(tmp_path, images, capsys, architecture):
    out = tmp_path / "out"
    assert run_cli("refine", images[0], "--bundled", architecture, "--iterations", 20, "--out", out) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"].startswith(f"bundled:{architecture}:q3:")
    row = metrics["images"][0]
    assert row["refined"]["loss"] < row["base"]["loss"]
    assert run_cli("decode", out / "one.bin", "--out", tmp_path / "decoded.png") == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "decoded.png")), np.asarray(Image.open(out / "one.png")))


def test_demo_prints_what_the_refiner_computes(capsys):
    """The demo on the bundled context model prints the base and refined true losses that a direct LatentRefiner
    run with the same settings computes, their relative change, and the size of the real bitstream."""
    import re

    from sgaplus.files import bitstream
    from sgaplus.files.images import load_shipped_image
    from sgaplus.files.loading import load_codec
    from sgaplus.refine import presets
    from sgaplus.refine.refiner import LatentRefiner
    assert run_cli("demo", "--bundled", "mbt2018", "--crop", 64, "--iterations", 10) == 0
    printed = capsys.readouterr().out
    assert "model bundled:mbt2018:q3:" in printed
    base, refined, lower, size = re.search(r"true RD loss ([\d.]+) -> ([\d.]+) \(([\d.]+)% lower\); bitstream (\d+) "
                                           r"bytes", printed).groups()
    codec = load_codec(bundled="mbt2018")
    x = load_shipped_image("astronaut")[:, :64, :64].unsqueeze(0)
    options = presets.refiner_options(presets.DEFAULT_PRESET, iterations=10)
    result = LatentRefiner(codec, "ssl", seed=0, **options).refine(x)
    assert float(base) == pytest.approx(result.base.loss[0], abs=1e-4)
    assert float(refined) == pytest.approx(result.best.loss[0], abs=1e-4) and float(refined) < float(base)
    assert float(lower) == pytest.approx(100 * (1 - result.best.loss[0] / result.base.loss[0]), abs=0.06)
    assert int(size) == len(bitstream.encode(codec, result.y_hat, result.z_hat, (64, 64))[0])
