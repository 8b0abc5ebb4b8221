"""Presets: the options a user leaves unset take the preset's values, explicit options win, "auto" compiles only
runs long enough to pay; a compiler that fails leaves the run eager with one warning and the same results."""
import inspect
import json
import warnings

import pytest
import torch
from helpers import bundled_codec, sample_crop

from sgaplus.cli import build_parser, main, settings_of
from sgaplus.refine import presets
from sgaplus.refine.refiner import LatentRefiner


def compiled(refiner):
    """Whether a refiner's relaxed loss was handed to torch.compile (eager: the bound method itself)."""
    return not inspect.ismethod(refiner._loss)


class Options:
    """The settings `sgaplus refine` builds from its options, resolved, with each field as an attribute."""

    def __init__(self, settings):
        self.settings = settings
        vars(self).update(settings.flat())

    def for_pixels(self, pixels):
        return Options(self.settings.for_pixels(pixels))


def options(*words):
    return Options(settings_of(build_parser().parse_args(["refine", "x.png", *words])).resolved())


def cli_refiner(args, codec):
    return LatentRefiner(codec, args.settings.for_codec(codec))


def test_each_preset_fills_what_is_left_unset():
    for name, preset in presets.PRESETS.items():
        args = options("--preset", name)
        assert (args.iterations, args.lr, args.schedule, args.check_every, args.early_stop, args.compile) == \
            (preset.iterations, preset.lr, preset.schedule, preset.check_every, preset.early_stop or 0, preset.compile)
    assert options().preset == presets.DEFAULT_PRESET
    paper = options("--preset", "paper")
    assert (paper.iterations, paper.lr, paper.schedule, paper.compile) == (2000, 5e-3, "sga+", False)


def test_the_presets_and_the_default_as_api(capsys):
    """The values each preset stands for, the default the command line and refiner_options() take, and what
    `sgaplus refine --help` says of it (literals: a change of any of them is a change of the API)."""
    fast, paper = presets.PRESETS["fast"], presets.PRESETS["paper"]
    assert (fast.iterations, fast.schedule, fast.lr, fast.check_every, fast.compile, fast.early_stop) == \
        (500, "budget", 2e-2, 10, "auto", None)
    assert (paper.iterations, paper.schedule, paper.lr, paper.check_every, paper.compile, paper.early_stop) == \
        (2000, "sga+", 5e-3, 10, False, None)
    assert presets.DEFAULT_PRESET == "fast"
    assert options().preset == "fast" and options().iterations == 500
    default = presets.refiner_options()
    assert default["iterations"] == 500 and default["lr"] == 2e-2 and default["compile"] is False
    assert default["schedule"] == presets.refiner_options("fast")["schedule"]
    with pytest.raises(SystemExit):
        main(["refine", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: fast; with --resume, the earlier run's)" in shown


def test_resume_keeps_the_preset_of_the_run_it_resumes(tmp_path):
    """A resumed run without --preset takes the preset metrics.json recorded (not the default, which may have
    changed since), so it resumes; an explicit other preset is refused as other settings are."""
    from PIL import Image
    other = next(name for name in presets.PRESETS if name != presets.DEFAULT_PRESET)
    paths = []
    for i, (top, left) in enumerate(((0, 0), (100, 100))):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(sample_crop(64, top=top, left=left)[0].mul(255).round().byte().permute(1, 2, 0)
                        .numpy()).save(paths[-1])
    out = tmp_path / "out"
    assert main(["refine", str(paths[0]), "--preset", other, "--iterations", "2", "--out", str(out)]) == 0
    common = ["--iterations", "2", "--out", str(out), "--resume"]
    assert main(["refine", *map(str, paths), "--preset", presets.DEFAULT_PRESET, *common]) == 1  # other settings
    assert main(["refine", *map(str, paths), *common]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["settings"]["budget"]["preset"] == other and len(record["images"]) == 2
    assert record["settings"]["budget"]["lr"] == presets.PRESETS[other].lr


def test_explicit_options_override_the_preset():
    args = options("--preset", "fast", "--iterations", "123", "--lr", "0.001", "--schedule", "yang2020",
                   "--check-every", "7", "--no-compile", "--early-stop", "4")
    assert (args.iterations, args.lr, args.schedule, args.check_every, args.compile, args.early_stop) == \
        (123, 0.001, "yang2020", 7, False, 4)
    assert options("--preset", "paper", "--compile").compile is True
    assert options("--no-early-stop").early_stop == 0 and options("--no-early-stop").settings.early_stopping() is None


def test_auto_compiles_only_runs_long_enough_to_pay():
    args = options("--preset", "fast")
    assert args.compile == "auto"
    args = args.for_pixels([256 * 256])
    assert args.compile is (args.iterations * 256 * 256 >= presets.COMPILE_MIN_PIXEL_STEPS)
    long_run = options("--preset", "fast")
    assert long_run.for_pixels([presets.COMPILE_MIN_PIXEL_STEPS // long_run.iterations]).compile is True
    short_run = options("--preset", "fast")
    assert short_run.for_pixels([presets.COMPILE_MIN_PIXEL_STEPS // short_run.iterations - 1]).compile is False


def test_the_chosen_preset_is_recorded_for_resume(tmp_path, images):
    out = tmp_path / "out"
    assert main(["refine", str(images[0]), "--preset", "fast", "--iterations", "3", "--out", str(out)]) == 0
    settings = json.loads((out / "metrics.json").read_text())["settings"]["budget"]
    assert (settings["preset"], settings["iterations"], settings["lr"], settings["schedule"]) == \
        ("fast", 3, presets.PRESETS["fast"].lr, presets.PRESETS["fast"].schedule)


@pytest.fixture
def images(tmp_path):
    from PIL import Image
    path = tmp_path / "one.png"
    Image.fromarray(sample_crop(64)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
    return [path]


@pytest.fixture
def broken_compiler():
    import torch._dynamo

    def broken(graph, example_inputs):
        raise RuntimeError("this compiler is broken")

    torch._dynamo.register_backend(broken, "sgaplus_test_broken")
    return "sgaplus_test_broken"


def test_a_compiler_that_fails_leaves_the_run_eager_with_one_warning(broken_compiler):
    x = sample_crop(64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = LatentRefiner(bundled_codec(), "ssl", iterations=20, compile=broken_compiler).refine(x)
    messages = [str(w.message) for w in caught if "compiling the relaxed loss failed" in str(w.message)]
    assert messages == ["compiling the relaxed loss failed (RuntimeError: this compiler is broken); refining without "
                        "compiling"]
    eager = LatentRefiner(bundled_codec(), "ssl", iterations=20).refine(x)
    assert torch.equal(compiled.y_hat, eager.y_hat) and compiled.best.loss == eager.best.loss


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_a_preset_in_python_is_the_command_lines(name):
    """refiner_options gives LatentRefiner the settings the command line builds for the same preset and batch."""
    codec = bundled_codec()
    for pixels in (256 * 256, presets.COMPILE_MIN_PIXEL_STEPS):
        args = options("--preset", name).for_pixels([pixels])
        from_cli = cli_refiner(args, codec)
        from_python = LatentRefiner(codec, "ssl", **presets.refiner_options(name, pixels))
        for attribute in ("iterations", "lr", "schedule", "check_every", "early_stopping"):
            assert getattr(from_python, attribute) == getattr(from_cli, attribute), attribute
        assert compiled(from_python) is compiled(from_cli) is (args.compile is True)
    assert presets.refiner_options("fast")["compile"] is False  # no batch size given: eager
    args = options("--preset", name, "--iterations", "37").for_pixels([256 * 256])
    assert LatentRefiner(codec, "ssl", **presets.refiner_options(name, iterations=37)).schedule == \
        cli_refiner(args, codec).schedule
