"""sgaplus.patch: a model's own compress refines, in its own form, read by its unchanged decompress; undone exactly.
CompressAI models with bundled or stand-in zoo weights and a model in a published style (tests/published_models.py),
under torch.no_grad() as evaluation scripts call compress."""
import pytest
import torch
from helpers import sample_crop, trained_published
from published_models import DecoderUnlikeForward

import sgaplus
from sgaplus.files.loading import load_bundled

ITERATIONS = 20
LMBDA = 0.013  # the bundled q3 models' training lambda; the published stand-in is refined at it too
SIZE = 64


def batch():
    return torch.cat([sample_crop(SIZE, top=120, left=180), sample_crop(SIZE, "coffee", top=100, left=200)])


def bundled(architecture):
    return load_bundled(architecture, 3)[0]


def rd_loss(model, out, x):
    """The true RD loss of what compress returned: its strings' size and the decoded images."""
    x_hat = model.decompress(out["strings"], out["shape"])["x_hat"].clamp(0, 1)
    bits = 8 * sum(len(string) for strings in out["strings"] for string in strings)
    return LMBDA * 255 ** 2 * ((x_hat - x) ** 2).mean().item() + bits / (x.shape[0] * SIZE * SIZE)


def layout(out):
    return sorted(out), [len(strings) for strings in out["strings"]], out["shape"]


# a hyperprior, a context model (serial coding) and a published style (the generic adapter); ELIC and the other
# latent-codec models write their strings through the same adapter as `sgaplus refine` (tests/test_architectures.py)
MODELS = {"mbt2018-mean": lambda: bundled("mbt2018-mean"), "mbt2018 (context)": lambda: bundled("mbt2018"),
          "published channel-conditional": lambda: trained_published("ChannelConditional")}


@pytest.mark.parametrize("name", MODELS)
def test_patched_compress_refines_in_the_models_own_form_and_undo_restores_it(name):
    model, x = MODELS[name](), batch()
    with torch.no_grad():
        plain = model.compress(x)
        handle = sgaplus.patch(model, lmbda=LMBDA, iterations=ITERATIONS)
        refined = model.compress(x)
        assert layout(refined) == layout(plain)
        assert refined["strings"] != plain["strings"]
        assert rd_loss(model, refined, x) < 0.98 * rd_loss(model, plain, x)
        handle.undo()
        assert model.compress(x)["strings"] == plain["strings"]  # byte for byte
    assert "compress" not in vars(model)


def test_the_lambda_of_bundled_weights_is_known_and_inference_mode_works():
    model, x = bundled("mbt2018-mean"), batch()[:1]
    with torch.inference_mode():
        plain = model.compress(x)
        with sgaplus.patch(model, iterations=ITERATIONS):  # no lmbda: the bundled q3's 0.013
            refined = model.compress(x)
    assert rd_loss(model, refined, x) < rd_loss(model, plain, x)


class Seen(Exception):
    """Raised by a stand-in refine with the lambda it was given."""


def test_the_lambda_of_zoo_weights_is_known_and_others_are_asked_for(zoo_cache, monkeypatch):
    from compressai.zoo import mbt2018_mean
    from helpers import fresh_model
    zoo_cache("mbt2018-mean", 2, fresh_model("mbt2018-mean").state_dict())
    model = mbt2018_mean(quality=2, pretrained=True)

    def refine(self, x, **kwargs):
        raise Seen(self.lmbda)
    monkeypatch.setattr(sgaplus.LatentRefiner, "refine", refine)
    with sgaplus.patch(model), pytest.raises(Seen) as seen:
        model.compress(sample_crop(SIZE))
    assert seen.value.args == (pytest.approx(0.0035),)  # the zoo's quality 2
    other = fresh_model("mbt2018-mean")  # the same architecture, other weights: not known
    torch.nn.init.normal_(other.g_a[0].weight)
    with pytest.raises(sgaplus.UsageError, match="training lambda of this MeanScaleHyperprior is not known"):
        sgaplus.patch(other)


def test_iterations_zero_writes_the_unrefined_strings():
    model, x = bundled("mbt2018-mean"), batch()
    with torch.no_grad():
        plain = model.compress(x)
        with sgaplus.patch(model, iterations=0):
            assert model.compress(x)["strings"] == plain["strings"]


def test_the_context_manager_undoes_on_an_exception():
    model, x = bundled("mbt2018-mean"), batch()[:1]
    with torch.no_grad():
        plain = model.compress(x)
        with pytest.raises(RuntimeError, match="the script failed"):
            with sgaplus.patch(model, lmbda=LMBDA, iterations=ITERATIONS):
                raise RuntimeError("the script failed")
        assert model.compress(x)["strings"] == plain["strings"] and "compress" not in vars(model)


def test_undo_restores_modes_weights_and_gradients():
    """Building a codec puts the model in eval mode without gradients (and masks context weights in place):
    undo puts back what it found."""
    model = bundled("elic2022-chandelier").train().requires_grad_(True)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    with sgaplus.patch(model, lmbda=LMBDA, iterations=ITERATIONS):
        assert not model.training
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())


def test_a_patched_class_refines_every_instance():
    from compressai.models import MeanScaleHyperprior
    x = batch()[:1]
    with torch.no_grad():
        model = bundled("mbt2018-mean")
        plain = model.compress(x)
        with sgaplus.patch(MeanScaleHyperprior, lmbda=LMBDA, iterations=ITERATIONS):
            refined = model.compress(x)  # an instance that existed before
            built_later = bundled("mbt2018-mean")
            assert built_later.compress(x)["strings"] == refined["strings"]
        assert "compress" not in vars(MeanScaleHyperprior) or \
            not getattr(MeanScaleHyperprior.compress, "sgaplus_patched", False)
        assert model.compress(x)["strings"] == plain["strings"]
    assert rd_loss(model, refined, x) < rd_loss(model, plain, x)


def test_mistakes_are_one_line_before_any_work():
    model = bundled("mbt2018-mean")
    for call, error, message in [
            (lambda: sgaplus.patch(model, lmbda=LMBDA, iteration=5), sgaplus.UsageError, "unknown option 'iteration'"),
            (lambda: sgaplus.patch(model, lmbda=LMBDA, method="round"), sgaplus.UsageError, "unknown method"),
            (lambda: sgaplus.patch(model, iterations=-1), sgaplus.UsageError, r"integer >= 0 \(0: the model"),
            (lambda: sgaplus.patch(model, lmbda=-1.0), sgaplus.UsageError, "lmbda"),
            (lambda: sgaplus.patch(torch.nn.Linear(2, 2), lmbda=LMBDA), sgaplus.UsageError, "takes a CompressionModel"),
    ]:
        with pytest.raises(error, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)
        assert "compress" not in vars(model)
    with sgaplus.patch(model, lmbda=LMBDA), pytest.raises(sgaplus.UsageError, match="patched already"):
        sgaplus.patch(model, lmbda=LMBDA)
    x = sample_crop(48)
    with sgaplus.patch(model, lmbda=LMBDA, iterations=ITERATIONS), \
            pytest.raises(sgaplus.UsageError, match="a multiple of 64"):
        model.compress(x)
    with sgaplus.patch(model, lmbda=LMBDA, iterations=ITERATIONS), \
            pytest.raises(sgaplus.UsageError, match=r"compress\(self, x\) does not take this call's arguments"):
        model.compress(sample_crop(SIZE), stage=2)  # a variable-rate model's argument, given to a fixed-rate model


def test_a_model_codec_for_refuses_is_refused_with_the_same_line():
    model = DecoderUnlikeForward()
    model.update()
    with pytest.raises(sgaplus.ModelError) as refused:
        sgaplus.codec_for(model, lmbda=LMBDA)
    with pytest.raises(sgaplus.ModelError) as patched:
        sgaplus.patch(model, lmbda=LMBDA)
    assert str(patched.value) == str(refused.value) and "compress" not in vars(model)


def test_the_command_lines_iterations_zero_writes_the_unrefined_file(tmp_path, capsys):
    """As LatentRefiner(iterations=0) and sgaplus.patch(iterations=0) do: the file --method base writes."""
    from PIL import Image

    from sgaplus.cli import main
    picture = tmp_path / "picture.png"
    Image.fromarray(sample_crop(SIZE)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(picture)
    assert main(["refine", str(picture), "--iterations", "0", "--out", str(tmp_path / "zero")]) == 0
    assert main(["refine", str(picture), "--method", "base", "--out", str(tmp_path / "base")]) == 0
    assert main(["refine", str(picture), "--iterations", "10", "--out", str(tmp_path / "ten")]) == 0
    zero, base, ten = ((tmp_path / name / "picture.bin").read_bytes() for name in ("zero", "base", "ten"))
    assert zero == base != ten
    capsys.readouterr()
