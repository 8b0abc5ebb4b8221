"""Shared test helpers: the kernels' device, method grid, backend noise, scaled comparisons, sample crops and
the bundled codec."""
import functools
import json

import torch

from sgaplus.files.images import load_shipped_image
from sgaplus.files.loading import load_codec
from sgaplus.ops.rounding import METHODS, chunked
from sgaplus.ops.rounding.noise import logit_noise

KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # cpu: through TRITON_INTERPRET=1
CONFIGS = [(classes, method) for classes in (2, 3) for method in METHODS[classes]]


def backend_uniforms(backend, seed, n_elements, classes, device):
    """The (n_elements, classes - 1) uniforms the backend draws for `seed`."""
    if backend == "triton":
        from sgaplus.kernels import rounding
        return rounding.uniforms(seed, n_elements, classes, device)
    return chunked.uniforms(seed, n_elements, classes, device)


def backend_noise(backend, seed, n_elements, classes, device):
    """The per-class logit noise (n_elements, classes), float64, that the backend adds for `seed`."""
    return logit_noise(backend_uniforms(backend, seed, n_elements, classes, device).double(), classes)


def assert_close_scaled(actual, expected, tol, what=""):
    """|actual - expected| <= tol * max(1, max|expected|) everywhere, and no NaN/Inf."""
    actual, expected = actual.double(), expected.double()
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    if expected.numel() == 0:
        return
    scale = max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol * scale, f"{what}: max abs error {err:.3g} > {tol:g} x scale {scale:.3g}"


def sample_crop(size=128, name="astronaut", top=0, left=0):
    """(1, 3, H, W) crop of a shipped sample image; size is an int (square) or (H, W)."""
    image = load_shipped_image(name)
    h, w = (size, size) if isinstance(size, int) else size
    return image[:, top:top + h, left:left + w].unsqueeze(0)


@functools.lru_cache(maxsize=None)
def bundled_codec(quality=None, architecture="mbt2018-mean"):
    return load_codec(quality=quality, bundled=architecture)


# the constructor options a stand-in (N = M = 32) needs: ELIC's channel groups must add up to M
STAND_IN_OPTIONS = {name: {"groups": [4, 4, 8, 8, 8]} for name in ("elic2022-official", "elic2022-chandelier")}
STAND_IN_LEVEL = 4  # a variable-rate stand-in is trained, and refined, at this level


def train_briefly(model, steps, lmbda=0.01, **forward):
    """A few RD steps on crops of a shipped training image, so that a model's entropy models fit its latents."""
    image = load_shipped_image("chelsea")
    aux = [p for name, p in model.named_parameters() if name.endswith(".quantiles")]
    optimizer = torch.optim.Adam([p for name, p in model.named_parameters() if not name.endswith(".quantiles")],
                                 lr=2e-3)
    aux_optimizer = torch.optim.Adam(aux, lr=1e-2)
    model.train()
    for step in range(steps):
        top, left = (37 * step) % 200, (53 * step) % 350
        x = image[:, top:top + 64, left:left + 64].unsqueeze(0)
        out = model(x, **forward)
        bits = sum(-torch.log2(likelihood).sum() for likelihood in out["likelihoods"].values())
        loss = lmbda * 255 ** 2 * ((out["x_hat"] - x) ** 2).mean() + bits / 64 ** 2
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # some architectures diverge from random weights
        optimizer.step()
        aux_optimizer.zero_grad()  # every entropy bottleneck's quantiles (CompressAI's aux_loss misses the vbr one)
        sum(module.loss() for module in model.modules() if hasattr(module, "quantiles")).backward()
        aux_optimizer.step()
    model.update(force=True)
    return model.eval().requires_grad_(False)


def random_model(architecture, steps=200, seed=0, **options):
    """A small model of `architecture` (N=M=32) from random weights, trained for a few steps (lambda 0.01); one per
    configuration, however the call spells it (defaults given or not: each stand-in is trained once a session)."""
    options = {**STAND_IN_OPTIONS.get(architecture, {}), **options}
    return _trained_model(architecture, steps, seed, json.dumps(options, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _trained_model(architecture, steps, seed, options):
    from sgaplus.codecs import registry
    torch.manual_seed(seed)
    model = registry.build_model(architecture, 32, 32, json.loads(options))
    variable_rate = registry.adapter(architecture).variable_rate
    return train_briefly(model, steps, **({"stage": 2, "s": STAND_IN_LEVEL} if variable_rate else {}))


def state_before_update(model):
    """A model's weights as training scripts save them, before update(): the entropy models' coder tables empty."""
    tables = ("_quantized_cdf", "_offset", "_cdf_length")
    return {key: value.new_empty(0) if key.rsplit(".", 1)[-1] in tables else value
            for key, value in model.state_dict().items()}


@functools.lru_cache(maxsize=None)
def random_codec(architecture, steps=200, seed=0):
    """random_model's codec: a stand-in where no model of the architecture is bundled (a variable-rate one at
    STAND_IN_LEVEL)."""
    from sgaplus.codecs import registry
    adapter = registry.adapter(architecture)
    rate = {"level": STAND_IN_LEVEL} if adapter.variable_rate else {}
    return adapter(random_model(architecture, steps, seed), f"random:{architecture}", 0.01, **rate)


class PoisonedCodec:
    """The bundled codec, except that from the n-th relaxed step on, image `victim`'s reconstruction is NaN."""

    def __init__(self, codec, victim, after):
        self.codec, self.victim, self.after, self.steps = codec, victim, after, 0

    def __getattr__(self, name):
        return getattr(self.codec, name)

    def synthesis(self, y_hat):
        x_hat = self.codec.synthesis(y_hat)
        if torch.is_grad_enabled():  # the relaxed steps (the true-loss checks run without gradients)
            self.steps += 1
            if self.steps >= self.after and x_hat.shape[0] > self.victim:  # until the victim leaves the batch
                x_hat = x_hat.clone()
                x_hat[self.victim] = float("nan")
        return x_hat


@functools.lru_cache(maxsize=None)
def trained_published(name, steps=150):
    """A model of tests/published_models.py (by class name), trained briefly, seeded."""
    import published_models
    torch.manual_seed(0)
    return train_briefly(getattr(published_models, name)(), steps)


def fresh_model(architecture):
    """Random weights of the zoo's size for the architecture (the sizes of CompressAI's own tables)."""
    from compressai.models import MeanScaleHyperprior, ScaleHyperpriorVbr
    torch.manual_seed(0)
    if architecture == "mbt2018-mean":
        return MeanScaleHyperprior(128, 192)  # the zoo's quality 3 sizes
    return ScaleHyperpriorVbr(192, 320, vr_entbttlnck=True)  # as the zoo's variable-rate weights are
