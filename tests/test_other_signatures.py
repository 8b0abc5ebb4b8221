"""Models whose forward, compress or decompress take more than CompressAI's arguments (docs/codecs.md, "Other
signatures"), with no adapter code: the quality-map codec called compress(x, qmap) and the file-writing codec called
compress(x, path) under sgaplus.patch and `sgaplus run`, both through `--model-class` with `--model-calls`, and
CompressAI's variable-rate models called compress(x, stage, s, inputscale) as its eval_model calls them. Each writes
what the model's own compress writes for the call (byte for byte unrefined), refines, and its own decompress reads
the refined file; each refusal is one line whose advice, followed, works. The models are test_forward_idioms.py's."""
import json
import runpy
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import random_model, sample_crop, state_before_update
from published_idioms import FILE_CALLS
from test_forward_idioms import codec_of

import sgaplus
from sgaplus.cli import main
from sgaplus.codecs.vbr import VariableRate
from sgaplus.files.images import read_rgb, write_png

IDIOMS = str(Path(__file__).with_name("published_idioms.py"))
LMBDA = 0.01  # the idioms' training lambda (helpers.train_briefly)
SIZE = 64
REFINE = {"iterations": 30, "check_every": 10, "lr": 2e-2}
CLI_REFINE = ["--lmbda", str(LMBDA), "--iterations", "30", "--check-every", "10", "--lr", "2e-2"]


def batch():
    return torch.cat([sample_crop(SIZE, top=100, left=100), sample_crop(SIZE, "coffee", top=100, left=200)])


def quality_maps(x):
    """One map per image, each its own ramp across the width (image i's: 0.2 to 0.8 times (i + 1) / 2)."""
    ramp = torch.linspace(0.2, 0.8, x.shape[-1]).expand(1, 1, *x.shape[-2:])
    return torch.cat([ramp * (i + 1) / 2 for i in range(x.shape[0])])


def rd_loss(bits, x_hat, x, lmbda=LMBDA):
    return lmbda * 255 ** 2 * ((x_hat.clamp(0, 1) - x) ** 2).mean().item() + bits / (x.shape[0] * x.shape[-2] *
                                                                                       x.shape[-1])


def string_bits(out):
    return 8 * sum(len(string) for strings in out["strings"] for string in strings)


def one_line(error):
    assert "\n" not in str(error)
    return str(error)


def test_the_quality_map_codecs_own_compress_call_refines_under_patch():
    """compress(x, qmap) with a map per image: unrefined, the model's own strings byte for byte (forward got each
    image's map); refined, a lower loss read by its own decompress."""
    model, x = codec_of("quality-map").model, batch()
    qmap = quality_maps(x)
    with torch.no_grad():
        plain = model.compress(x, qmap)
        with sgaplus.patch(model, lmbda=LMBDA, iterations=0):
            assert model.compress(x, qmap)["strings"] == plain["strings"]
        with sgaplus.patch(model, lmbda=LMBDA, **REFINE):
            refined = model.compress(x, qmap)
        assert sorted(refined) == sorted(plain) and refined["shape"] == plain["shape"]
        x_hats = [model.decompress(out["strings"], out["shape"])["x_hat"] for out in (plain, refined)]
    assert rd_loss(string_bits(refined), x_hats[1], x) < 0.98 * rd_loss(string_bits(plain), x_hats[0], x)
    with sgaplus.patch(model, lmbda=LMBDA, iterations=0), pytest.raises(sgaplus.UsageError) as refused:
        model.compress(x)  # no map: the model's own compress would not take it either
    assert "missing a required argument: 'qmap'" in one_line(refused.value)


def test_the_file_writing_codec_refines_under_patch_with_its_calls(tmp_path):
    """compress(x, path) writes a file, decompress(path) reads it: refused without calls= in one line; with the
    calls the advice names, the script's own call writes the refined file (the unrefined one byte for byte)."""
    model, x = codec_of("own-entropy-model").model, batch()[:1]
    with torch.no_grad():
        model.compress(x, tmp_path / "plain.bin")
        with sgaplus.patch(model, lmbda=LMBDA, iterations=0), pytest.raises(sgaplus.UsageError) as refused:
            model.compress(x, tmp_path / "refused.bin")
        assert "decompress(path) cannot be called (strings, shape)" in one_line(refused.value)
        assert "calls=sgaplus.ModelCalls" in str(refused.value) and not (tmp_path / "refused.bin").exists()
        with sgaplus.patch(model, lmbda=LMBDA, calls=FILE_CALLS, iterations=0):
            assert model.compress(x, tmp_path / "zero.bin") is None
        with sgaplus.patch(model, lmbda=LMBDA, calls=FILE_CALLS, **REFINE):
            model.compress(x, tmp_path / "refined.bin")
        losses = [rd_loss(8 * (tmp_path / name).stat().st_size, model.decompress(tmp_path / name)["x_hat"], x)
                  for name in ("plain.bin", "refined.bin")]
    assert (tmp_path / "zero.bin").read_bytes() == (tmp_path / "plain.bin").read_bytes()
    assert losses[1] < 0.98 * losses[0]


def published_weights(model, path):
    torch.save(state_before_update(model), path)
    return path


@pytest.mark.parametrize("style,cls,calls", [("quality-map", "QualityMapCodec", "MAP_CALLS"),
                                             ("own-entropy-model", "OwnEntropyModel", "FILE_CALLS")])
def test_model_class_with_model_calls_refines_and_decodes(tmp_path, capsys, style, cls, calls):
    weights = published_weights(codec_of(style).model, tmp_path / "weights.pt")
    write_png(tmp_path / "crop.png", sample_crop(SIZE, top=100, left=100))
    model = ["--model-class", f"{IDIOMS}:{cls}", "--checkpoint", str(weights)]
    refine = ["refine", str(tmp_path / "crop.png"), *model, *CLI_REFINE, "--out", str(tmp_path / "out")]
    if style == "quality-map":  # without its calls: one line, naming the option that follows
        assert main(refine) == 2
        err = capsys.readouterr().err
        assert "forward(x, qmap) cannot be called (x)" in err and "--model-calls FILE.py:NAME" in err
        assert err.count("\n") == 1 and not (tmp_path / "out").exists()
    assert main([*refine, "--model-calls", f"{IDIOMS}:{calls}"]) == 0
    row = json.loads((tmp_path / "out" / "metrics.json").read_text())["images"][0]
    assert row["refined"]["loss"] < row["base"]["loss"]
    decoded = tmp_path / "decoded.png"
    assert main(["decode", str(tmp_path / "out" / "crop.bin"), "--out", str(decoded), *model, "--model-calls",
                 f"{IDIOMS}:{calls}"]) == 0
    assert torch.equal(read_rgb(decoded), read_rgb(tmp_path / "out" / "crop.png"))


def test_evaluate_takes_model_calls_beside_model_class(tmp_path):
    write_png(tmp_path / "crop.png", sample_crop(SIZE, top=100, left=100))
    weights = [str(published_weights(codec_of("quality-map").model, tmp_path / f"w{n}.pt")) for n in (1, 2)]
    assert main(["evaluate", str(tmp_path / "crop.png"), "--model-class", f"{IDIOMS}:QualityMapCodec", "--checkpoint",
                 *weights, "--lmbda", "0.01", "0.02", "--model-calls", f"{IDIOMS}:MAP_CALLS", "--iterations", "1",
                 "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "pairs.json").read_text())["pairs"][-1]["lmbda"] == 0.02


@pytest.mark.parametrize("calls,status,message", [
    ("nofile.py:MAP_CALLS", 2, "--model-calls: no file nofile.py"),
    ("IDIOMS:NOTHING", 2, "has no 'NOTHING', not a ModelCalls"),
    ("IDIOMS:constant_map", 2, "has a function named 'constant_map', not a ModelCalls"),
    ("IDIOMS", 2, "give FILE.py:NAME or package.module:NAME"),
    ("no model class", 1, "--model-calls says how to call --model-class's model; give --model-class too"),
])
def test_model_calls_mistakes_are_one_line_and_nothing_is_written(tmp_path, capsys, calls, status, message):
    write_png(tmp_path / "crop.png", sample_crop(SIZE))
    weights = published_weights(codec_of("quality-map").model, tmp_path / "weights.pt")
    model = [] if calls == "no model class" else ["--model-class", f"{IDIOMS}:QualityMapCodec", "--checkpoint",
                                                  str(weights)]
    spec = f"{IDIOMS}:MAP_CALLS" if calls == "no model class" else calls.replace("IDIOMS", IDIOMS)
    assert main(["refine", str(tmp_path / "crop.png"), *model, "--lmbda", "0.01", "--model-calls", spec, "--out",
                 str(tmp_path / "o")]) == status
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


SCRIPTS = {"quality map": textwrap.dedent('''
    import sys
    import torch
    from published_idioms import QualityMapCodec
    net = QualityMapCodec()
    net.load_state_dict(torch.load(sys.argv[1]))
    net.eval()
    net.update()
    x = torch.load(sys.argv[2])
    ramp = torch.linspace(0.2, 0.8, x.shape[-1]).expand(1, 1, *x.shape[-2:])
    with torch.no_grad():
        out = net.compress(x, torch.cat([ramp * (i + 1) / 2 for i in range(x.shape[0])]))
        x_hat = net.decompress(out["strings"], out["shape"])["x_hat"]
    print(8 * sum(len(s) for strings in out["strings"] for s in strings), ((x_hat.clamp(0, 1) - x) ** 2).mean().item())
'''), "file": textwrap.dedent('''
    import sys
    from pathlib import Path
    import torch
    from published_idioms import OwnEntropyModel
    net = OwnEntropyModel()
    net.load_state_dict(torch.load(sys.argv[1]))
    net.eval()
    net.update()
    x = torch.load(sys.argv[2])[:1]
    with torch.no_grad():
        net.compress(x, sys.argv[3])
        x_hat = net.decompress(sys.argv[3])["x_hat"]
    print(8 * Path(sys.argv[3]).stat().st_size, ((x_hat.clamp(0, 1) - x) ** 2).mean().item())
''')}


@pytest.mark.parametrize("kind", SCRIPTS)
def test_sgaplus_run_refines_a_script_that_calls_compress_with_more_than_the_image(tmp_path, capsys, monkeypatch,
                                                                                    kind):
    """The quality-map script's compress(x, qmap) needs no option; the file-writing script's compress(x, path)
    needs --model-calls."""
    style = {"quality map": "quality-map", "file": "own-entropy-model"}[kind]
    script = tmp_path / "script.py"
    script.write_text(SCRIPTS[kind])
    torch.save(batch(), tmp_path / "x.pt")
    weights = published_weights(codec_of(style).model, tmp_path / "weights.pt")
    arguments = [str(weights), str(tmp_path / "x.pt"), str(tmp_path / "image.bin")]
    monkeypatch.setattr(sys, "argv", [str(script), *arguments])
    runpy.run_path(str(script), run_name="__main__")
    plain = capsys.readouterr().out
    options = ["--model-calls", f"{IDIOMS}:FILE_CALLS"] if kind == "file" else []
    assert main(["run", "--lmbda", str(LMBDA), "--iterations", "30", "--lr", "2e-2", *options, str(script),
                 *arguments]) == 0
    refined = capsys.readouterr().out
    x = batch()[:1] if kind == "file" else batch()
    losses = [LMBDA * 255 ** 2 * float(mse) + float(bits) / x[:, 0].numel()
              for bits, mse in (printed.split() for printed in (plain, refined))]
    assert losses[1] < 0.98 * losses[0], (plain, refined)


def vbr_call(model, call):
    """(args, kwargs, the rate's VariableRate) of a variable-rate compress call; the model's z tables set for the
    rate, as eval_model does before it compresses at a rate."""
    args, kwargs = call
    given = {**dict(zip(("stage", "s", "inputscale"), args)), **kwargs}
    gain = float(given.get("inputscale", 0))
    rate = VariableRate(model, gain=gain) if gain else VariableRate(model, level=given.get("s", 1))
    model.update(force=True, scale=rate.gain)
    return args, kwargs, rate


@pytest.mark.parametrize("call", [((), {"stage": 2, "s": 0, "inputscale": torch.tensor(0.5)}), ((2, 4), {}),
                                  ((), {})], ids=["inputscale", "level", "defaults"])
def test_a_variable_rate_models_compress_refines_at_the_rate_it_is_called_with(call):
    """As eval_model calls it: unrefined, its own strings at that rate byte for byte; refined, a lower loss at the
    rate's lambda, read by its own decompress at that rate. No lambda: the rate's training lambda."""
    model, x = random_model("mbt2018-mean-vbr", vr_entbttlnck=True), batch()
    with torch.no_grad():
        args, kwargs, rate = vbr_call(model, call)
        plain = model.compress(x, *args, **kwargs)
        with sgaplus.patch(model, iterations=0):
            assert model.compress(x, *args, **kwargs)["strings"] == plain["strings"]
        with sgaplus.patch(model, **REFINE):
            refined = model.compress(x, *args, **kwargs)
        assert sorted(refined) == sorted(plain) and refined["shape"] == plain["shape"]
        x_hats = [model.decompress(out["strings"], out["shape"], *args, **kwargs)["x_hat"] for out in (plain, refined)]
    losses = [rd_loss(string_bits(out), x_hat, x, rate.lmbda) for out, x_hat in zip((plain, refined), x_hats)]
    assert losses[1] < 0.98 * losses[0]


def test_a_variable_rate_models_stage_1_is_refused_in_one_line_and_the_advice_works():
    model, x = random_model("mbt2018-mean-vbr", vr_entbttlnck=True), batch()[:1]
    with torch.no_grad(), sgaplus.patch(model, iterations=0):
        with pytest.raises(sgaplus.UsageError) as refused:
            model.compress(x, stage=1, s=4)
        assert "call it with stage=2" in one_line(refused.value)
        args, kwargs, _ = vbr_call(model, ((), {"stage": 2, "s": 4}))
        assert len(model.compress(x, *args, **kwargs)["strings"]) == 2
