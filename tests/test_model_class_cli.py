"""A model class of the user's own from the command line: `--model-class FILE.py:CLASS` (or module:CLASS),
`--model-args`, its published weights with `--checkpoint`, `--lmbda`; refine writes files its own decompress reads,
decode refuses another class or other weights, and every mistake is one line before anything is written."""
import json
from pathlib import Path

import pytest
import torch
from helpers import sample_crop, train_briefly, trained_published
from published_checkerboard import StfStyle
from published_models import ChannelConditional, DecoderUnlikeForward

from sgaplus.cli import main
from sgaplus.files.bitstream import unpack
from sgaplus.files.images import read_rgb, write_png

PUBLISHED = str(Path(__file__).with_name("published_models.py"))
SIZE = 128


def save_published(path, model, wrap=True):
    """Weights the way training scripts publish them: under "state_dict", names prefixed by DataParallel."""
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 1} if wrap else model.state_dict(), path)
    return path


@pytest.fixture
def image(tmp_path):
    write_png(tmp_path / "crop.png", sample_crop(SIZE, top=100, left=100))
    return tmp_path / "crop.png"


def refine(tmp_path, image, spec, weights, *extra):
    return main(["refine", str(image), "--model-class", spec, "--checkpoint", str(weights), "--out",
                 str(tmp_path / "out"), *extra])


def test_a_published_class_refines_and_its_own_decompress_reads_the_file(tmp_path, image, capsys):
    model = trained_published("ChannelConditional")
    weights = save_published(tmp_path / "weights.pth", model)
    assert refine(tmp_path, image, f"{PUBLISHED}:ChannelConditional", weights, "--lmbda", "0.01", "--iterations",
                  "30", "--check-every", "10", "--lr", "2e-2") == 0
    [row] = json.loads((tmp_path / "out" / "metrics.json").read_text())["images"]
    assert row["refined"]["loss"] < row["base"]["loss"]
    decoded = tmp_path / "decoded.png"
    assert main(["decode", str(tmp_path / "out" / "crop.bin"), "--out", str(decoded), "--model-class",
                 "published_models:ChannelConditional", "--checkpoint", str(weights)]) == 0
    assert torch.equal(read_rgb(decoded), read_rgb(tmp_path / "out" / "crop.png"))
    model_id, _, z_size, strings = unpack((tmp_path / "out" / "crop.bin").read_bytes())
    assert model_id.startswith("class:published_models.ChannelConditional:")
    with torch.no_grad():
        theirs = model.decompress([[s] for s in strings], list(z_size))["x_hat"].clamp(0, 1)
    assert (theirs.mul(255).round() / 255 - read_rgb(decoded)).abs().max() <= 1 / 255


def test_a_class_with_its_analysis_inline_in_forward_refines_and_decodes(tmp_path, image, capsys):
    """STF's style (no g_a module; channel slices): the command line takes it as the Python API does."""
    torch.manual_seed(0)
    weights = save_published(tmp_path / "weights.pth", train_briefly(StfStyle(), 20))
    spec = f"{Path(PUBLISHED).with_name('published_checkerboard.py')}:StfStyle"
    assert refine(tmp_path, image, spec, weights, "--lmbda", "0.01", "--iterations", "20", "--check-every", "10",
                  "--lr", "2e-2") == 0
    [row] = json.loads((tmp_path / "out" / "metrics.json").read_text())["images"]
    assert row["refined"]["loss"] < row["base"]["loss"]
    decoded = tmp_path / "decoded.png"
    assert main(["decode", str(tmp_path / "out" / "crop.bin"), "--out", str(decoded), "--model-class", spec,
                 "--checkpoint", str(weights)]) == 0
    assert torch.equal(read_rgb(decoded), read_rgb(tmp_path / "out" / "crop.png"))


def test_decode_refuses_another_class_or_other_weights(tmp_path, image, capsys):
    torch.manual_seed(0)
    model = ChannelConditional().eval()
    weights = save_published(tmp_path / "weights.pth", model)
    assert refine(tmp_path, image, f"{PUBLISHED}:ChannelConditional", weights, "--lmbda", "0.01", "--iterations",
                  "1") == 0
    with torch.no_grad():
        model.g_s[0].bias.add_(1e-3)
    other = save_published(tmp_path / "other.pth", model)
    (tmp_path / "renamed.py").write_text("from published_models import ChannelConditional\n\n\n"
                                         "class Renamed(ChannelConditional):\n    pass\n")
    stream = str(tmp_path / "out" / "crop.bin")
    capsys.readouterr()
    for extra, message in [([], "pass --model-class, --model-args and --checkpoint"),
                           (["--model-class", f"{PUBLISHED}:ChannelConditional", "--checkpoint", str(other)],
                            "made with other weights of published_models.ChannelConditional"),
                           (["--model-class", f"{tmp_path / 'renamed.py'}:Renamed", "--checkpoint", str(weights)],
                            "made with the model class published_models.ChannelConditional, not")]:
        assert main(["decode", stream, "--out", str(tmp_path / "x.png"), *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.png").exists()


def test_a_module_of_the_users_own_with_neighbours_imports(tmp_path, image, capsys):
    """FILE.py:CLASS imports the file with its folder on the path (its own imports of neighbouring files work),
    and a class without keywords is built by its from_state_dict where it has one."""
    (tmp_path / "layers.py").write_text("SLICES = 2\n")
    (tmp_path / "mymodel.py").write_text(
        f"import sys\nsys.path.insert(0, {str(Path(PUBLISHED).parent)!r})\nfrom layers import SLICES\n"
        "from published_models import ChannelConditional\n\n\nclass Mine(ChannelConditional):\n"
        "    @classmethod\n    def from_state_dict(cls, state):\n        return cls(slices=SLICES)\n")
    torch.manual_seed(0)
    weights = save_published(tmp_path / "w.pth", ChannelConditional(slices=2), wrap=False)
    assert refine(tmp_path, image, f"{tmp_path / 'mymodel.py'}:Mine", weights, "--lmbda", "0.01", "--iterations",
                  "1") == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["model"].startswith("class:mymodel.Mine:")


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("spec,extra,status,message", [
    ("nofile.py:ChannelConditional", [], 2, "no file nofile.py"),
    ("PUBLISHED:Nothing", [], 2, "has no 'Nothing'; its CompressionModel classes: ChannelConditional"),
    ("PUBLISHED:ste_round", [], 2, "is not a subclass of compressai's CompressionModel"),
    ("PUBLISHED", [], 2, "give FILE.py:CLASS or package.module:CLASS"),
    ("no_such_package.models:Model", [], 2, "importing no_such_package.models failed: ModuleNotFoundError"),
    ("PUBLISHED:ChannelConditional", ["--model-args", "{N: 8}"], 2, "--model-args is not JSON"),
    ("PUBLISHED:ChannelConditional", ["--model-args", "[8]"], 2, "must be a JSON object"),
    ("PUBLISHED:ChannelConditional", ["--model-args", '{"bogus": 1}'], 2, "failed: TypeError"),
    ("PUBLISHED:ChannelConditional", ["--model-args", '{"slices": 2}'], 2, "do not fit ChannelConditional: 0 "
                                                                           "missing (-), 24 unexpected"),
    ("PUBLISHED:ChannelConditional", ["--model-args", '{"N": 8}'], 2, "do not fit ChannelConditional: size"),
    ("PUBLISHED:DecoderUnlikeForward", [], 2, "forward is not its encoder"),
    ("PUBLISHED:ChannelConditional", ["--quality", "2"], 1, "--model-class and --quality both choose a model"),
    ("PUBLISHED:ChannelConditional", ["--no-lmbda"], 1, "--model-class needs --lmbda"),
    ("PUBLISHED:ChannelConditional", ["--no-checkpoint"], 1, "--model-class needs its weights"),
])
def test_mistakes_are_one_line_and_nothing_is_written(tmp_path, image, capsys, spec, extra, status, message):
    torch.manual_seed(0)
    model = DecoderUnlikeForward() if "DecoderUnlikeForward" in spec else ChannelConditional()
    weights = save_published(tmp_path / "weights.pth", model)
    args = ["refine", str(image), "--model-class", spec.replace("PUBLISHED", PUBLISHED), "--out", str(tmp_path / "o")]
    args += [] if "--no-checkpoint" in extra else ["--checkpoint", str(weights)]
    args += [] if "--no-lmbda" in extra else ["--lmbda", "0.01"]
    args += [arg for arg in extra if not arg.startswith("--no-")]
    assert main(args) == status
    assert message in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_model_args_need_a_model_class(tmp_path, image, capsys):
    assert main(["refine", str(image), "--model-args", "{}", "--out", str(tmp_path / "o")]) == 1
    assert "give --model-class too" in one_line_error(capsys)
