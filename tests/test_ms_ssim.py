"""Refining for the distortion the model was trained for: MS-SSIM (lambda * (1 - MS-SSIM) + bpp, as CompressAI
trains its MS-SSIM models) or a distortion of the user's own; the zoo's MS-SSIM weights with their lambdas; the
reports give PSNR and MS-SSIM whatever the objective."""
import json

import pytest
import torch
from helpers import bundled_codec, sample_crop
from pytorch_msssim import ms_ssim as library_ms_ssim

from sgaplus import LatentRefiner
from sgaplus.cli import main
from sgaplus.codecs.registry import equivalent_lambda
from sgaplus.files.bitstream import decode, encode
from sgaplus.files.images import read_rgb, write_png
from sgaplus.files.loading import codec_for_id, load_codec
from sgaplus.refine.distortion import DISTORTIONS, Distortion, ms_ssim, ms_ssim_db

HEIGHT, WIDTH = 192, 256  # above MS-SSIM's 161 pixels a side
LMBDA = 10.0  # between CompressAI's MS-SSIM lambdas of qualities 3 and 4 (8.73, 16.64)


def crop():
    return sample_crop(WIDTH, top=100, left=100)[..., :HEIGHT, :]


def test_ms_ssim_is_the_librarys_per_image_and_its_decibels():
    x = torch.cat([crop(), sample_crop(WIDTH, name="coffee")[..., :HEIGHT, :]])
    x_hat = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    expected = library_ms_ssim(x_hat, x, data_range=1.0, size_average=False)
    assert ms_ssim(x_hat, x) == pytest.approx(expected.tolist(), abs=1e-6)
    assert ms_ssim(x, x) == pytest.approx([1.0, 1.0], abs=1e-6)
    assert 0.5 < expected.min() < expected.max() < 0.999 and expected[0] != expected[1]  # not a vacuous pair
    assert DISTORTIONS["ms-ssim"](x_hat, x).tolist() == pytest.approx((1 - expected).tolist(), abs=1e-6)
    assert ms_ssim_db(0.99) == pytest.approx(20.0) and ms_ssim(x[..., :160, :], x[..., :160, :]) is None


def files_loss(codec, latents, x, lmbda):
    """lambda * (1 - MS-SSIM of the decoded file) + the file's bits per pixel, and the decoded image."""
    [stream] = encode(codec, latents.y_hat, latents.z_hat, (HEIGHT, WIDTH))
    x_hat, _ = decode(stream, lambda model_id: codec)
    return lmbda * (1 - ms_ssim(x_hat, x)[0]) + 8 * len(stream) / (HEIGHT * WIDTH), x_hat


def test_refining_for_ms_ssim_lowers_its_loss_measured_on_the_files():
    codec, x = bundled_codec(), crop()
    base = LatentRefiner(codec, "base", lmbda=LMBDA, distortion="ms-ssim").refine(x)
    refined = LatentRefiner(codec, "ssl", iterations=30, check_every=10, lr=2e-2, lmbda=LMBDA,
                            distortion="ms-ssim").refine(x)
    assert refined.best.loss[0] < base.best.loss[0]
    assert base.base.distortion[0] == pytest.approx(1 - ms_ssim(base.x_hat, x)[0], abs=1e-6)
    assert base.base.loss[0] == pytest.approx(LMBDA * base.base.distortion[0] + base.base.bpp[0], rel=1e-6)
    (base_files, _), (refined_files, x_hat) = (files_loss(codec, r, x, LMBDA) for r in (base, refined))
    assert refined_files < base_files
    assert 1 - ms_ssim(x_hat, x)[0] == pytest.approx(refined.best.distortion[0], abs=1e-5)


def test_a_distortion_of_ones_own_refines():
    def l1(x_hat, x):
        return (x_hat - x).abs().flatten(1).mean(dim=1)
    codec, x = bundled_codec(), sample_crop(64)
    result = LatentRefiner(codec, "ssl", iterations=20, check_every=10, lr=2e-2, lmbda=5.0, distortion=l1).refine(x)
    assert result.best.loss[0] < result.base.loss[0]
    assert result.best.distortion[0] == pytest.approx(l1(result.x_hat, x).item(), rel=1e-5)
    broken = Distortion("sum", lambda x_hat, x: ((x_hat - x) ** 2).sum())
    with pytest.raises(ValueError, match="one value per image"):
        LatentRefiner(codec, "ssl", iterations=1, lmbda=5.0, distortion=broken).refine(x)
    with pytest.raises(ValueError, match="at least 161x161"):
        LatentRefiner(codec, "ssl", iterations=1, lmbda=5.0, distortion="ms-ssim").refine(x)


def test_the_command_reports_ms_ssim_and_its_file_matches(tmp_path, capsys):
    write_png(tmp_path / "crop.png", crop())
    out = tmp_path / "out"
    assert main(["refine", str(tmp_path / "crop.png"), "--metric", "ms-ssim", "--lmbda", str(LMBDA), "--iterations",
                 "10", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "trained for mse; refining it for ms-ssim" in captured.err
    assert "ms-ssim" in captured.out.splitlines()[0]
    summary = json.loads((out / "metrics.json").read_text())
    [row] = summary["images"]
    assert summary["distortion"] == "ms-ssim" and summary["settings"]["objective"]["metric"] == "ms-ssim"
    assert main(["decode", str(out / "crop.bin"), "--out", str(tmp_path / "decoded.png")]) == 0
    x, decoded = read_rgb(tmp_path / "crop.png"), read_rgb(tmp_path / "decoded.png")
    refined = row["refined"]
    assert refined["ms_ssim"] == pytest.approx(ms_ssim(decoded, x)[0], abs=2e-4)  # the PNG's 8-bit rounding
    assert refined["loss"] == pytest.approx(LMBDA * (1 - refined["ms_ssim"]) + refined["bpp"], rel=1e-5)
    assert abs(row["file_bpp"] - refined["bpp"]) <= 0.1 * refined["bpp"]
    assert refined["ms_ssim_db"] == pytest.approx(ms_ssim_db(refined["ms_ssim"]))
    assert summary["average"]["refined"]["ms_ssim"] == pytest.approx(refined["ms_ssim"])


@pytest.mark.parametrize("args,message", [
    (["--metric", "ms-ssim", "--lmbda", "10"], "ms-ssim needs images of at least 161x161 pixels (its five scales); "
                                                "small.png is 96x64"),
])
def test_ms_ssim_mistakes_are_one_line_before_any_work(tmp_path, capsys, args, message):
    write_png(tmp_path / "small.png", sample_crop(96)[..., :64, :])
    assert main(["refine", str(tmp_path / "small.png"), *args, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_another_metric_than_the_models_gets_the_lambda_at_the_same_place_of_compressais_tables(tmp_path, capsys):
    assert equivalent_lambda(0.0067, "mse", "ms-ssim") == pytest.approx(8.73)  # quality 3 of both tables
    assert equivalent_lambda(0.0250, "mse", "ms-ssim") == pytest.approx(31.73)
    assert equivalent_lambda(equivalent_lambda(0.01, "mse", "ms-ssim"), "ms-ssim", "mse") == pytest.approx(0.01)
    assert 8.73 < equivalent_lambda(0.0100, "mse", "ms-ssim") < 16.64
    write_png(tmp_path / "crop.png", crop())
    assert main(["refine", str(tmp_path / "crop.png"), "--metric", "ms-ssim", "--iterations", "1", "--out",
                 str(tmp_path / "out")]) == 0
    codec = bundled_codec()
    expected = equivalent_lambda(codec.lmbda, "mse", "ms-ssim")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["lmbda"] == pytest.approx(expected)
    assert f"refining it for ms-ssim with lambda {expected:.4g}" in capsys.readouterr().err


def test_the_zoo_gives_its_ms_ssim_weights_and_lambdas(zoo_cache, tmp_path, capsys):
    from compressai.models import MeanScaleHyperprior
    torch.manual_seed(0)
    model = MeanScaleHyperprior(128, 192)
    zoo_cache("mbt2018-mean", 3, model.state_dict(), metric="ms-ssim")
    codec = load_codec("mbt2018-mean", 3, metric="ms-ssim")
    assert (codec.model_id, codec.lmbda, codec.metric) == ("zoo:mbt2018-mean:q3:ms-ssim", 8.73, "ms-ssim")
    assert torch.equal(codec.model.g_a[0].weight, model.g_a[0].weight)
    assert codec_for_id(codec.model_id).model_id == codec.model_id
    write_png(tmp_path / "crop.png", crop())
    assert main(["refine", str(tmp_path / "crop.png"), "--model", "mbt2018-mean", "--quality", "3", "--metric",
                 "ms-ssim", "--iterations", "1", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (summary["model"], summary["lmbda"], summary["distortion"]) == (codec.model_id, 8.73, "ms-ssim")
    assert "trained for" not in capsys.readouterr().err  # refined for what it was trained for: no warning


def test_the_zoo_gives_cheng2020_anchors_ms_ssim_weights(zoo_cache, tmp_path):
    from compressai.models import Cheng2020Anchor
    torch.manual_seed(0)
    model = Cheng2020Anchor(128)  # the zoo's quality 3 size
    zoo_cache("cheng2020-anchor", 3, model.state_dict(), metric="ms-ssim")
    codec = load_codec("cheng2020-anchor", 3, metric="ms-ssim")
    assert (codec.model_id, codec.lmbda, codec.metric) == ("zoo:cheng2020-anchor:q3:ms-ssim", 8.73, "ms-ssim")
    assert torch.equal(codec.model.g_s[0].conv1.weight, model.g_s[0].conv1.weight)
