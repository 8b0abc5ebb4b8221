"""`sgaplus evaluate`: every rate point x image written as an unrefined and a refined file and decoded; the curves
in CompressAI's eval_model format (read by CompressAI's own plot code), BD metrics as sgaplus.bd computes them, a
table of every pair, a plot; resumable; mistakes in one line."""
import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from compressai.utils.plot.__main__ import parse_json_file
from helpers import fresh_model, sample_crop
from published_models import ChannelConditional

from sgaplus.bd import bd_psnr, bd_rate
from sgaplus.cli import main
from sgaplus.evaluate import run as evaluation
from sgaplus.files.images import write_png
from sgaplus.files.loading import bundled_path
from sgaplus.refine import memory

QUALITIES = ("1", "2", "3")
SIZE = 96
REFINE = ["--iterations", "30", "--check-every", "10", "--lr", "2e-2", "--no-compile"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = [folder / "astronaut.png", folder / "coffee.png"]
    write_png(paths[0], sample_crop(SIZE, top=100, left=100))
    write_png(paths[1], sample_crop(SIZE, name="coffee", top=150, left=200))
    return [str(p) for p in paths]


def evaluate(images, out, *extra):
    return main(["evaluate", *images, "--qualities", *QUALITIES, "--out", str(out), *REFINE, *extra])


@pytest.fixture(scope="module")
def whole(tmp_path_factory, images):
    """An evaluation run without interruption, and what it printed."""
    out = tmp_path_factory.mktemp("whole")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert evaluate(images, out) == 0
    return out, printed.getvalue()


def without_times(path):
    value = json.loads(path.read_text())
    value.get("results", {}).pop("encoding_time", None)
    return value


def test_curves_in_compressais_format_from_real_files(whole):
    out, printed = whole
    pairs = json.loads((out / "pairs.json").read_text())["pairs"]
    curves = {}
    for kind in ("base", "refined"):
        parsed = parse_json_file(out / f"{kind}.json", "psnr")  # CompressAI's own reader
        results = json.loads((out / f"{kind}.json").read_text())["results"]
        assert parsed["xs"] == results["bpp"] and len(results["bpp"]) == len(QUALITIES)
        assert results["bpp"] == sorted(results["bpp"]) and "ms-ssim-rgb" not in results  # small: no MS-SSIM
        for point, bpp in zip(results["points"], results["bpp"]):
            files = [out / row[kind]["file"] for row in pairs if row["point"] == point]
            assert len(files) == 2
            assert bpp == pytest.approx(sum(8 * f.stat().st_size / SIZE ** 2 for f in files) / 2, rel=1e-12)
        curves[kind] = results
    bd = json.loads((out / "bd.json").read_text())
    args = [curves[k][f] for k in ("base", "refined") for f in ("bpp", "psnr-rgb")]
    assert bd["bd_rate_percent_psnr"] == pytest.approx(bd_rate(*args))
    assert bd["bd_psnr_db"] == pytest.approx(bd_psnr(*args))
    for row in pairs:  # refining lowers each file pair's RD loss (the refiner's lambda, file bits, decoded PSNR)
        base, refined = (row[k]["bpp"] + row["lmbda"] * 255 ** 2 * 10 ** (-row[k]["psnr"] / 10)
                         for k in ("base", "refined"))
        assert refined < base, row
    assert bd["bd_rate_percent_psnr"] < 0
    assert (out / "rd.png").stat().st_size > 0 and len((out / "images.csv").read_text().splitlines()) == 7
    assert "BD-rate of refined against base" in printed


def test_resume_after_an_interruption_gives_the_same_files(tmp_path, images, whole, monkeypatch):
    calls, code_files = [], evaluation.code_files

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 5:  # the second rate point's first unrefined file (on a CPU each image refines alone)
            raise KeyboardInterrupt
        return code_files(*args)

    monkeypatch.setattr(evaluation, "code_files", interrupted)
    assert evaluate(images, tmp_path / "part") == 130
    assert len(json.loads((tmp_path / "part" / "pairs.json").read_text())["pairs"]) == 2
    monkeypatch.setattr(evaluation, "code_files", code_files)
    assert evaluate(images, tmp_path / "part", "--resume") == 0
    for name in ("base.json", "refined.json", "bd.json"):
        assert without_times(tmp_path / "part" / name) == without_times(whole[0] / name), name
    for file in (whole[0] / "bitstreams").rglob("*.bin"):
        assert (tmp_path / "part" / file.relative_to(whole[0])).read_bytes() == file.read_bytes()
    assert evaluate(images, tmp_path / "part", "--resume", "--lr", "1e-2") == 1  # other settings: refused


def test_resume_redoes_a_pair_whose_file_was_deleted(tmp_path, images):
    """A finished pair whose bitstream is gone is refined again, alone: each image draws its own noise, and on a CPU
    refines alone in any run (test_batch_invariance), so the file comes back byte for byte."""
    quick = ["--qualities", "1", "2", "--iterations", "4", "--check-every", "2", "--no-compile"]
    assert main(["evaluate", *images, *quick, "--out", str(tmp_path)]) == 0
    gone = sorted((tmp_path / "bitstreams").rglob("*.refined.bin"))[-1]
    written = gone.read_bytes()
    gone.unlink()
    assert main(["evaluate", *images, *quick, "--out", str(tmp_path), "--resume"]) == 0
    assert gone.read_bytes() == written


def test_checkpoint_files_and_a_model_class_are_rate_points(tmp_path, images):
    files = [str(bundled_path(quality=q)) for q in (1, 2)]
    assert main(["evaluate", *images, "--checkpoint", *files, "--iterations", "1", "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "base.json").read_text())["results"]["points"] == [Path(f).stem for f in files]
    weights = []
    for n in (1, 2):
        torch.manual_seed(n)
        weights.append(tmp_path / f"cc{n}.pth")
        torch.save(ChannelConditional().state_dict(), weights[-1])
    published = str(Path(__file__).with_name("published_models.py"))
    assert main(["evaluate", *images, "--model-class", f"{published}:ChannelConditional", "--checkpoint",
                 *map(str, weights), "--lmbda", "0.01", "0.02", "--iterations", "1", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "pairs.json").read_text())["pairs"][-1]["lmbda"] == 0.02


@pytest.mark.parametrize("extra,message", [
    (["--qualities", "2"], "it needs two rate points or more, got 1 (q2)"),
    (["--levels", "1", "2"], "--levels chooses the rate points of a variable-rate model"),
    (["--checkpoint", "a.pt", "b.pt", "--lmbda", "0.01"], "one lambda per --checkpoint file: 1 lambdas for 2 files"),
    (["--metric", "ms-ssim"], "ms-ssim needs images of at least 161x161 pixels"),
    (["--model-class", "x.py:X", "--checkpoint", "a.pt", "b.pt"], "--model-class needs --lmbda, one per"),
])
def test_mistakes_are_one_line_and_nothing_is_written(tmp_path, images, capsys, extra, message):
    assert main(["evaluate", *images, "--out", str(tmp_path / "o"), "--iterations", "1", *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_an_earlier_evaluation_is_not_overwritten(tmp_path, images, capsys):
    out = tmp_path / "o"
    (out / "bitstreams").mkdir(parents=True)
    (out / "base.json").write_text("{}")
    assert main(["evaluate", *images, "--out", str(out), "--iterations", "1"]) == 1
    assert "would overwrite" in capsys.readouterr().err and (out / "base.json").read_text() == "{}"


def test_a_variable_rate_models_levels_and_images_of_mixed_sizes(tmp_path, zoo_cache):
    """--levels on the zoo's variable-rate model (weights placed offline); two images of different sizes."""
    zoo_cache("bmshj2018-hyperprior-vbr", None, fresh_model("bmshj2018-hyperprior-vbr").state_dict())
    write_png(tmp_path / "wide.png", sample_crop(96)[..., :64, :])
    write_png(tmp_path / "square.png", sample_crop(64, name="coffee"))
    assert main(["evaluate", str(tmp_path / "wide.png"), str(tmp_path / "square.png"), "--model",
                 "bmshj2018-hyperprior-vbr", "--levels", "2", "5", "--iterations", "1", "--out",
                 str(tmp_path / "o")]) == 0
    pairs = json.loads((tmp_path / "o" / "pairs.json").read_text())["pairs"]
    assert [(row["point"], row["width"], row["lmbda"]) for row in pairs] == [
        ("level2", 96, 0.0067), ("level2", 64, 0.0067), ("level5", 96, 0.0483), ("level5", 64, 0.0483)]


BATCH_TOLERANCE = 0.05  # docs/cli.md: a refined file's true loss, batched against one at a time


def test_same_size_images_refine_together_within_the_documented_tolerance(tmp_path, monkeypatch):
    """Four 64x64 images and two 64x96 at two qualities, batched as on a GPU (on a CPU each image refines alone,
    test_batch_invariance.py): each size refines as one batch (sizes never mixed), the unrefined files are the
    one-at-a-time files byte for byte, and the refined files (the same noise per image; with oneDNN's convolutions,
    batch-dependent in their last bits) are within BATCH_TOLERANCE of the one-at-a-time true loss."""
    monkeypatch.setattr(memory, "ONE_IMAGE_DEVICES", ())
    paths = [tmp_path / f"a{i}.png" for i in range(4)] + [tmp_path / "w0.png", tmp_path / "w1.png"]
    for i, path in enumerate(paths):
        write_png(path, sample_crop(64 if i < 4 else (64, 96), name=("astronaut", "coffee")[i % 2], top=30 * i))
    shapes, code_files = [], evaluation.code_files
    monkeypatch.setattr(evaluation, "code_files", lambda codec, refiner, x, *rest: shapes.append(
        (refiner.method, *x.shape[::2])) or code_files(codec, refiner, x, *rest))
    runs, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # tiny images: a second thread gains nothing, and waits on a busy machine
    try:
        for size in (8, 1):
            out = tmp_path / f"batch{size}"
            assert main(["evaluate", *map(str, paths), "--qualities", "1", "2", "--out", str(out), "--iterations",
                         "5", "--check-every", "1", "--no-compile", "--batch-size", str(size)]) == 0
            runs[size] = {(r["point"], r["image"]): r for r in json.loads((out / "pairs.json").read_text())["pairs"]}
    finally:
        torch.set_num_threads(threads)
    assert shapes[:8] == [(method, n, 64) for n in (4, 2) for method in ("base", "ssl")] * 2
    assert shapes[8:] == [(method, 1, 64) for _ in range(12) for method in ("base", "ssl")]
    for key, batched in runs[8].items():
        alone = runs[1][key]
        assert (tmp_path / "batch8" / batched["base"]["file"]).read_bytes() == \
            (tmp_path / "batch1" / alone["base"]["file"]).read_bytes(), key
        assert batched["base"] == {**alone["base"], "encoding_time": batched["base"]["encoding_time"],
                                   "loss": pytest.approx(alone["base"]["loss"], rel=1e-5)}  # the float loss
        assert batched["refined"]["loss"] == pytest.approx(alone["refined"]["loss"], rel=BATCH_TOLERANCE), key
