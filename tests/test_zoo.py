"""CompressAI's zoo, through its real loading code and offline: the zoo reads weights through torch.hub's cache, so a
state dict placed where the cache looks (TORCH_HOME, the file name of the zoo's URL) is loaded without a download.
Downloading is made to fail, so a wrong cache path fails the test instead of reaching the network."""
import pytest
import torch
from helpers import fresh_model, sample_crop

from sgaplus.cli import main
from sgaplus.files.loading import codec_for_id, load_codec

WEIGHTS = ("g_a.0.weight", "h_s.0.weight", "entropy_bottleneck.quantiles")


@pytest.mark.parametrize("architecture,quality,rate,model_id,lmbda", [
    ("mbt2018-mean", 3, {}, "zoo:mbt2018-mean:q3", 0.0067),
    ("bmshj2018-hyperprior-vbr", None, {"level": 6}, "zoo:bmshj2018-hyperprior-vbr:level6", 0.0932),
])
def test_zoo_weights_load_update_and_name_the_codec(zoo_cache, architecture, quality, rate, model_id, lmbda):
    model = fresh_model(architecture)
    zoo_cache(architecture, quality, model.state_dict())
    codec = load_codec(architecture, quality, **rate)
    assert codec.model_id == model_id and codec.lmbda == pytest.approx(lmbda)
    for key in WEIGHTS:
        assert torch.equal(codec.model.state_dict()[key], model.state_dict()[key]), key
    assert codec.model.entropy_bottleneck._quantized_cdf.numel() > 0  # updated: the coder has its tables
    again = codec_for_id(model_id)
    assert again.model_id == model_id and torch.equal(again.model.g_a[0].weight, model.g_a[0].weight)


def test_the_command_line_refines_with_zoo_weights_and_decodes(zoo_cache, tmp_path):
    zoo_cache("mbt2018-mean", 3, fresh_model("mbt2018-mean").state_dict())
    from PIL import Image
    picture, out = tmp_path / "picture.png", tmp_path / "out"
    Image.fromarray(sample_crop(64)[0].mul(255).round().byte().permute(1, 2, 0).numpy()).save(picture)
    assert main(["refine", str(picture), "--model", "mbt2018-mean", "--quality", "3", "--iterations", "2",
                 "--out", str(out)]) == 0
    assert main(["decode", str(out / "picture.bin"), "--out", str(tmp_path / "decoded.png")]) == 0
    import numpy as np
    decoded = np.asarray(Image.open(tmp_path / "decoded.png"))
    assert decoded.shape == (64, 64, 3) and np.array_equal(decoded, np.asarray(Image.open(out / "picture.png")))
