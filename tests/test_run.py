"""Evaluation programs written for a model report refined results: a released codec's eval.py with one added
sgaplus.patch line, the same script unchanged under `sgaplus run`, and CompressAI's eval_model under `sgaplus run`
(its JSON, read by CompressAI's own plot reader; a variable-rate model at each of its quantization steps).
Programs run in the test's process, as `sgaplus run` runs them."""
import json
import runpy
import sys
import textwrap

import pytest
import torch
from compressai.utils.plot.__main__ import parse_json_file
from helpers import random_model, sample_crop, state_before_update, trained_published
from PIL import Image

from sgaplus.cli import main
from sgaplus.codecs.vbr import VariableRate
from sgaplus.files.loading import load_bundled
from sgaplus.refine.refiner import LatentRefiner

ITERATIONS = "10"
LMBDA = 0.01  # the published stand-in's training lambda (helpers.train_briefly)

# a released codec's evaluation script, in the usual style: the model class of its repository (here one of the test
# suite's published-style models, under a class of the script's own whose compress calls the parent's), its weights
# saved from DataParallel under "state_dict", every image of a folder compressed and decompressed under no_grad
EVAL_SCRIPT = textwrap.dedent('''
    import argparse, math, os
    import torch
    from PIL import Image
    from torchvision import transforms
    from published_models import ChannelConditional


    class Released(ChannelConditional):
        def compress(self, x):
            return super().compress(x)


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--data")
        parser.add_argument("--checkpoint")
        args = parser.parse_args()
        net = Released()
        state = torch.load(args.checkpoint, map_location="cpu")["state_dict"]
        net.load_state_dict({key.replace("module.", "", 1): value for key, value in state.items()})
        net.eval()
        net.update()
        # PATCH
        names = sorted(os.listdir(args.data))
        bpp = psnr = 0.0
        for name in names:
            x = transforms.ToTensor()(Image.open(os.path.join(args.data, name)).convert("RGB")).unsqueeze(0)
            with torch.no_grad():
                out = net.compress(x)
                x_hat = net.decompress(out["strings"], out["shape"])["x_hat"].clamp(0, 1)
            bpp += sum(len(s[0]) for s in out["strings"]) * 8.0 / (x.shape[2] * x.shape[3])
            psnr += -10 * math.log10(((x_hat - x) ** 2).mean().item())
        print(f"average bpp: {bpp / len(names):.4f}")
        print(f"average PSNR: {psnr / len(names):.3f}")


    if __name__ == "__main__":
        main()
''')


def save_images(folder, size):
    folder.mkdir()
    for i, (name, top, left) in enumerate([("astronaut", 120, 180), ("coffee", 100, 200)]):
        crop = sample_crop(size, name, top, left)[0]
        Image.fromarray(crop.mul(255).round().byte().permute(1, 2, 0).numpy()).save(folder / f"image{i}.png")
    return folder


def rd_loss(bpp, psnr, lmbda):
    return lmbda * 255 ** 2 * 10 ** (-psnr / 10) + bpp


def printed_loss(text):
    values = dict(line.split(": ") for line in text.strip().splitlines())
    return rd_loss(float(values["average bpp"]), float(values["average PSNR"]), LMBDA)


@pytest.fixture
def released(tmp_path):
    """(script path, its arguments): the eval script, two 64x64 images, the weights as a released checkpoint."""
    state = trained_published("ChannelConditional").state_dict()
    checkpoint = tmp_path / "checkpoint.pth.tar"
    torch.save({"state_dict": {"module." + name: value for name, value in state.items()}}, checkpoint)
    script = tmp_path / "eval.py"
    script.write_text(EVAL_SCRIPT)
    return script, ["--data", str(save_images(tmp_path / "images", 64)), "--checkpoint", str(checkpoint)]


def run_script(path, arguments, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(path), *arguments])
    runpy.run_path(str(path), run_name="__main__")
    return capsys.readouterr().out


@pytest.fixture
def counted_refines(monkeypatch):
    """The images refined, counted."""
    calls, refine = [], LatentRefiner.refine
    monkeypatch.setattr(LatentRefiner, "refine", lambda self, x, **kwargs: calls.append(len(x)) or refine(self, x,
                                                                                                          **kwargs))
    return calls


def test_a_released_eval_script_reports_refined_results_with_one_added_line(released, capsys, monkeypatch,
                                                                              counted_refines):
    script, arguments = released
    plain = run_script(script, arguments, capsys, monkeypatch)
    patched_script = script.with_name("eval_patched.py")
    patched_script.write_text(EVAL_SCRIPT.replace("# PATCH", f"import sgaplus; sgaplus.patch(net, lmbda={LMBDA}, "
                                                             f"iterations={ITERATIONS})"))
    patched = run_script(patched_script, arguments, capsys, monkeypatch)
    assert counted_refines == [1, 1]  # each image once: the subclass's super().compress() is not refined again
    assert printed_loss(patched) < 0.98 * printed_loss(plain), (plain, patched)
    # unchanged, under `sgaplus run`: the class the script defines is patched when it is created, and the run
    # prints what the patched script printed
    assert main(["run", "--lmbda", str(LMBDA), "--iterations", ITERATIONS, str(script), *arguments]) == 0
    captured = capsys.readouterr()
    assert captured.out == patched and counted_refines == [1, 1, 1, 1]
    assert "Released's compress refines" in captured.err
    assert "compress" not in vars(sys.modules["published_models"].ChannelConditional) or \
        not getattr(sys.modules["published_models"].ChannelConditional.compress, "sgaplus_patched", False)


def eval_model_rd(text, lmbda):
    output = json.loads(text)
    results = output["results"]
    return output, rd_loss(results["bpp"][0], results["psnr-rgb"][0], lmbda)


def test_compressai_eval_model_under_sgaplus_run_reports_refined_results(tmp_path, capsys, monkeypatch):
    """CompressAI's own evaluation of a checkpoint (bundled mbt2018-mean q3 weights saved as a state dict): its JSON
    on stdout, unchanged in form, at a lower RD loss; without --lmbda the bundled weights' lambda is known."""
    images = save_images(tmp_path / "images", 176)  # MS-SSIM, which eval_model computes, needs 161 pixels a side
    checkpoint = tmp_path / "ckpt.pth.tar"
    torch.save({"state_dict": load_bundled("mbt2018-mean", 3)[0].state_dict()}, checkpoint)
    program = ["compressai.utils.eval_model", "checkpoint", str(images), "-a", "mbt2018-mean", "-p", str(checkpoint)]
    monkeypatch.setattr(sys, "argv", ["eval_model", *program[1:]])
    runpy.run_module(program[0], run_name="__main__", alter_sys=True)
    plain, plain_loss = eval_model_rd(capsys.readouterr().out, 0.013)
    assert main(["run", "--iterations", ITERATIONS, "-m", *program]) == 0
    captured = capsys.readouterr()
    refined, refined_loss = eval_model_rd(captured.out, 0.013)
    assert refined_loss < 0.98 * plain_loss, (plain["results"], refined["results"])
    assert sorted(refined) == sorted(plain) and sorted(refined["results"]) == sorted(plain["results"])
    assert "lambda 0.013" in captured.err
    saved = tmp_path / "refined.json"
    saved.write_text(captured.out)
    parsed = parse_json_file(saved, "psnr")  # CompressAI's own reader
    assert parsed["xs"] == refined["results"]["bpp"] and parsed["ys"] == refined["results"]["psnr-rgb"]


def test_compressai_eval_model_of_a_variable_rate_model_under_sgaplus_run(tmp_path, capsys, monkeypatch):
    """eval_model on a variable-rate checkpoint calls compress(x, stage=2, s=0, inputscale=gain) at each quantization
    step: each refines at its gain (its lambda the rate's training lambda), each run's RD loss lower."""
    images = save_images(tmp_path / "images", 176)
    model = random_model("mbt2018-mean-vbr", vr_entbttlnck=True)  # as eval_model builds this architecture
    checkpoint = tmp_path / "vbr.pth.tar"
    torch.save({"state_dict": state_before_update(model)}, checkpoint)
    program = ["compressai.utils.eval_model", "checkpoint", str(images), "-a", "mbt2018-mean-vbr", "-p",
               str(checkpoint), "--vbr_quantstep", "2.0,1.0"]
    monkeypatch.setattr(sys, "argv", ["eval_model", *program[1:]])
    runpy.run_module(program[0], run_name="__main__", alter_sys=True)
    plain = json.loads(capsys.readouterr().out)["results"]
    assert main(["run", "--iterations", ITERATIONS, "-m", *program]) == 0
    captured = capsys.readouterr()
    refined = json.loads(captured.out)["results"]
    assert "compress refines at gain0.5 " in captured.err and "compress refines at gain1.0 " in captured.err
    for run, gain in enumerate((0.5, 1.0)):  # eval_model's runs, by increasing gain
        lmbda = VariableRate(model, gain=gain).lmbda
        assert rd_loss(refined["bpp"][run], refined["psnr-rgb"][run], lmbda) < \
            0.98 * rd_loss(plain["bpp"][run], plain["psnr-rgb"][run], lmbda), (plain, refined)


def one_line_error(capsys, status, expected, argv):
    assert main(argv) == status
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[-1].startswith("sgaplus: error: ") and expected in lines[-1], captured.err
    return captured


def test_mistakes_are_one_line(tmp_path, capsys):
    one_line_error(capsys, 1, "no such script", ["run", "--lmbda", "0.01", str(tmp_path / "missing.py")])
    one_line_error(capsys, 1, "no module named 'no_such.module'", ["run", "-m", "no_such.module", "x"])
    one_line_error(capsys, 1, "name one program", ["run", "--lmbda", "0.01"])
    with pytest.raises(SystemExit) as exit:
        main(["run", "--bogus", str(tmp_path / "missing.py")])
    assert exit.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "unrecognized arguments: --bogus")
    one_line_error(capsys, 1, "iterations must be", ["run", "--iterations", "-3", "-m", "json.tool"])


PROGRAM = textwrap.dedent('''
    import sys
    import torch
    from published_models import {cls}
    print("the program's own output")
    torch.manual_seed(0)  # random weights whose outputs the probe's test image tells apart (not all are: seed 5)
    model = {cls}()
    model.update()
    with torch.no_grad():
        model.compress(torch.rand(1, 3, 64, 64))
    sys.exit({status})
''')


@pytest.mark.parametrize("cls,options,status,expected", [
    ("DecoderUnlikeForward", ["--lmbda", "0.01"], 2, "forward is not its encoder"),  # codec_for's own line
    ("MeanScale", [], 1, "training lambda of this MeanScale is not known"),
    ("MeanScale", ["--lmbda", "0.01", "--iterations", "2"], 3, None),  # the program's own exit status
])
def test_what_a_program_builds_is_checked_when_it_compresses(tmp_path, capsys, cls, options, status, expected):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.format(cls=cls, status=status))
    if expected is None:
        assert main(["run", *options, str(script)]) == status
        captured = capsys.readouterr()
    else:
        captured = one_line_error(capsys, status, expected, ["run", *options, str(script)])
    assert captured.out == "the program's own output\n"


def test_the_programs_own_error_is_its_traceback_not_an_sgaplus_line(tmp_path, capsys):
    """A FileNotFoundError of the program itself is no mistake of sgaplus's command line: python's traceback and
    status 1, as `python program.py` gives."""
    script = tmp_path / "program.py"
    script.write_text("open('no-such-input.png')\n")
    assert main(["run", "--lmbda", "0.01", str(script)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "FileNotFoundError" in err and "sgaplus: error" not in err
