"""LatentRefiner: per-image refinement of a codec's latents y, z (docs/refinement.md)."""
import math
import time
import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from ..codecs.base import round_around
from ..codecs.fixed_point import DECODER_DRIFT_TOLERANCE
from ..ops._common import check_positive
from ..ops.rounding import sga_round
from . import presets
from .batch import RefiningBatch
from .best import BestLatents
from .distortion import distortion_of, mse
from .history import History
from .noise import ImageNoise
from .results import Check, Metrics, RefinementResult
from .settings import AUTOCAST_DTYPES, BASELINES, SGA_METHODS, RefinementSettings  # noqa: F401 (re-exported)
from .target import RateTarget


def pad_to_multiple(x, multiple):
    """Replicate-pad the right and bottom of x (B, C, H, W) to a multiple of `multiple`."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


class LatentRefiner:
    """Refines the latents of a HyperpriorCodec for a batch of same-size images.

    settings: a RefinementSettings (settings.py: the rounding, the budget, the objective, the speed switches), or
    the method's name with the other settings as keywords (LatentRefiner(codec, "ssl", iterations=500, lr=2e-2)).
    Settings left unset are the "paper" preset's (2000 iterations of SGA+'s schedule, lr 5e-3; the command line's
    default is "fast"). A compile of "auto" (a preset's) runs eagerly: the command line decides it from the run's
    pixels (RefinementSettings.for_pixels).

    method: "ssl", "atanh", "linear", "cosine" (the fused op, `classes` 2 or 3, parameters a, r, n),
    or a baseline: "base" (no refinement), "ste" (straight-through rounding), "uniform" (additive
    uniform noise). lmbda defaults to the codec's training lambda (semi-multi-rate: pass another).
    distortion (metric): what the loss lambda * scale * distortion + bpp measures the reconstruction by: "mse" (scale
    255^2), "ms-ssim" (1 - MS-SSIM, scale 1; images of at least 161x161), or a Distortion (sgaplus.refine.distortion)
    or function (x_hat, x) -> (B,) of your own, differentiable (scale 1: pass the lambda that goes with it).
    The true loss (hard rounding) is checked at the start, every `check_every` steps and at the end;
    the latents with the lowest true loss checked are kept, per image. max_seconds: a batch stops at its best check
    so far once it has refined this long.

    Speed switches for the relaxed steps (the true-loss checks always run in float32, eagerly, with
    the process's TF32 settings): autocast ("bfloat16" or "float16": the codec's convolutions under
    torch.autocast), channels_last (image and latents in that memory format), compile (True, or a
    torch.compile backend name: the relaxed loss is compiled; tau and the noise seeds reach it as
    tensors on the image's device, so the annealing does not recompile), cuda_graphs (CUDA only: the
    relaxed loss compiled with mode="reduce-overhead", so forward and backward replay as CUDA graphs),
    tf32 (True: float32 convolutions and matmuls of the relaxed steps on TF32 tensor cores; False:
    full float32; None: leave torch's settings, whose default is TF32 for cuDNN convolutions).
    Not settings (how this object runs): progress (a progress bar), backend (the op's: "auto", "triton", "torch"),
    checkpoint_synthesis (recompute the synthesis transform in the backward instead of keeping its activations:
    less memory, one more forward of g_s per step; memory.py turns it on when an image would not fit otherwise),
    target (a RateTarget: lambda moved per image towards a rate).
    """

    def __init__(self, codec, settings="ssl", classes=None, *, progress=False, backend="auto",
                 checkpoint_synthesis=False, target=None, **keywords):
        if not isinstance(settings, RefinementSettings):
            keywords = {"method": settings, **keywords, **({} if classes is None else {"classes": classes})}
            settings = RefinementSettings.of(**{"distortion": "mse", **keywords})
        elif classes is not None or keywords:
            raise TypeError("LatentRefiner takes a RefinementSettings or keywords, not both")
        self.settings = settings = settings.resolved(presets.PYTHON_PRESET)
        budget, speed = settings.budget, settings.speed
        self.rounding = settings.rounding_config()  # the op's configuration (None for baselines)
        if settings.objective.lmbda is None and codec.lmbda is None:
            raise ValueError("lmbda is needed: the codec has no training lambda")
        lmbda = settings.objective.lmbda
        self.lmbda = check_positive("lmbda", codec.lmbda if lmbda is None else lmbda)
        self.distortion = distortion_of(settings.objective.metric or "mse")
        self.codec, self.method, self.seed = codec, settings.rounding.method, settings.rounding.seed
        self.iterations = 0 if self.method == "base" else budget.iterations
        self.lr, self.check_every, self.max_seconds = budget.lr, budget.check_every, budget.max_seconds
        self.schedule = settings.temperature_schedule()
        self.early_stopping = settings.early_stopping()
        if target is not None and not isinstance(target, RateTarget):
            raise TypeError(f"target must be a RateTarget or None, got {type(target).__name__}")
        if target is not None and self.early_stopping is not None:
            raise ValueError("a rate target moves lambda, so the true loss is no plateau measure: "
                             "use either target or early_stopping")
        self.target, self.progress, self.backend = target, progress, backend
        self.autocast_dtype, self.channels_last = AUTOCAST_DTYPES[speed.autocast], speed.channels_last
        self.tf32, self.cuda_graphs, self.checkpoint_synthesis = speed.tf32, speed.cuda_graphs, checkpoint_synthesis
        self._loss = self.relaxed_loss
        compile = speed.compile if speed.compile != "auto" else False
        if speed.cuda_graphs:
            self._loss = torch.compile(self.relaxed_loss, mode="reduce-overhead")
        elif compile:
            self._loss = torch.compile(self.relaxed_loss, **({} if compile is True else {"backend": compile}))

    # relaxations of rounding -------------------------------------------------------------------
    def _relaxed(self, value, offsets, tau, rng, stream=0):
        """Relaxed rounding of value around offsets (means or medians; None for zero).

        rng: the uniform method's torch.Generators, one per row, or the SGA methods' seed tensor (0-d, or one per
        row) (None: global RNG). stream: which of a step's rounding calls this is (a codec that rounds y in several
        parts numbers them), so that each part draws its own noise (the SGA methods' seeds are offset by it).
        """
        if self.method == "ste":
            centred = value if offsets is None else value - offsets
            rounded = centred + (torch.round(centred) - centred).detach()
            return rounded if offsets is None else rounded + offsets
        if self.method == "uniform":
            if rng is None:
                return value + torch.empty_like(value).uniform_(-0.5, 0.5)
            return value + torch.cat([torch.empty_like(value[j:j + 1]).uniform_(-0.5, 0.5, generator=generator)
                                      for j, generator in enumerate(rng)])
        seed = rng if stream == 0 or rng is None else rng + stream
        return sga_round(value, tau, means=offsets, config=self.rounding, seed=seed, backend=self.backend)

    def _rd_loss(self, x, size, y_hat, z_hat, entropy, clamp=False, lmbda=None):
        """(per-image loss, bits, mse, distortion, x_hat) of latents y_hat, z_hat and what the codec's bits need of
        y's entropy model. clamp: measure the reconstruction as the decoder outputs it (in [0, 1]); the relaxed loss
        does not. lmbda: a (B,) tensor of per-image lambdas instead of self.lmbda.
        """
        x_hat = self.codec.forward_reconstruction(entropy)
        x_hat = (self._synthesis(y_hat) if x_hat is None else x_hat)[..., :size[0], :size[1]]
        if clamp:
            x_hat = x_hat.clamp(0, 1)
        error = mse(x_hat, x)
        distortion = error if self.distortion.function is mse else self.distortion(x_hat, x)
        bits = self.codec.bits(y_hat, z_hat, entropy)
        weight = (self.lmbda if lmbda is None else lmbda) * self.distortion.scale
        loss = weight * distortion + bits / (size[0] * size[1])
        return loss, bits, error, distortion, x_hat

    def _synthesis(self, y_hat):
        """g_s(y_hat); with checkpoint_synthesis (and gradients), each of its stages is recomputed in the backward,
        one at a time, instead of keeping its activations."""
        if not (self.checkpoint_synthesis and torch.is_grad_enabled()):
            return self.codec.synthesis(y_hat)
        for stage in self.codec.synthesis_stages():
            y_hat = torch.utils.checkpoint.checkpoint(stage, y_hat, use_reentrant=False)
        return y_hat

    def relaxed_loss(self, x, y, z, tau, rng=None, lmbda=None, centres=None):
        """(per-image loss (B,), next rounding centres) of latents y, z (z None without z) with the method's relaxed
        rounding at temperature tau (a float, or a 0-d tensor).

        rng: for the SGA methods an integer tensor of seeds (z's, then y's): (2,), or (2, B) for a seed per image;
        for "uniform" a torch.Generator per image; None draws from torch's global generator. lmbda: per-image
        lambdas (B,), or None.
        centres: a context model's rounding centres for y (the previous iterate's means; the second value
        returned, detached, is this step's); None for other codecs (and None is returned).
        """
        z_rng, y_rng = (rng, rng) if self.method == "uniform" or rng is None else (rng[0], rng[1])
        z_hat = None if z is None else self._relaxed(z, self.codec.z_offsets(), tau, z_rng)
        y_hat, entropy, centres = self.codec.y_latents(
            y, z_hat, lambda v, o, stream=0: self._relaxed(v, o, tau, y_rng, stream), centres)
        loss = self._rd_loss(x, x.shape[-2:], y_hat, z_hat, entropy, lmbda=lmbda)[0]
        return loss, centres

    @contextmanager
    def _precision(self):
        """The relaxed steps' float32 precision: TF32 or IEEE for cuDNN convolutions and matmuls, or as set."""
        if self.tf32 is None:
            yield
            return
        settings = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
        before = [setting.fp32_precision for setting in settings]
        try:
            for setting in settings:
                setting.fp32_precision = "tf32" if self.tf32 else "ieee"
            yield
        finally:
            for setting, value in zip(settings, before):
                setting.fp32_precision = value

    def _metrics(self, loss, bits, error, distortion, pixels):
        psnr = [10 * math.log10(1 / max(m, 1e-12)) for m in error.tolist()]
        return Metrics(loss.tolist(), (bits / pixels).tolist(), psnr, error.tolist(), distortion.tolist())

    def refine(self, x, seed=None, names=None):
        """Refine the latents of x, a (B, 3, H, W) batch in [0, 1] of same-size images (noise seed: self.seed).

        Each image draws its own noise, keyed by the seed and its pixels (noise.py), so its result does not depend
        on the other images of the batch. names: the images' names, for the progress bar and warnings. An image
        leaves the batch (and stops costing work) when early stopping finds its true loss on a plateau
        (result.stopped_step; every image at once when max_seconds is up), or when its relaxed loss or latents
        become non-finite, NaN or inf from any cause (result.nonfinite_step; a warning names it and the steps).
        Either way it keeps its best latents so far. The history holds, per check, each image's checked metrics,
        or for an image that has left the batch its best ones.
        """
        self._check_images(x)
        names = [f"image {i}" for i in range(x.shape[0])] if names is None else list(names)
        # the SGA methods need two seeds per image and step: drawn on the image's device before the first step (no
        # host sync in the loop) and passed into a compiled loss (no graph break), like the uniform method's noise
        kind = "sga" if self.rounding else "uniform" if self.method == "uniform" else None
        noise = ImageNoise(x, self.seed if seed is None else seed, self.iterations, kind)
        batch = self._start(x)
        base = self._first_check(batch)
        goals = None if self.target is None else self.target.per_image(x.shape[0])  # a rate target's, per image
        base_x_hat = base.x_hat.clone()  # the best's reconstruction starts as this tensor and changes in place
        best = BestLatents(base, goals)
        history = History()
        history.record(0, self.schedule(0), base, batch.images, best)
        plateau = self.early_stopping.tracker(base.metrics.loss) if self.early_stopping else None
        bar, started = self._progress_bar(names), time.monotonic()
        for step in range(1, self.iterations + 1):
            tau = self.schedule(step - 1)
            relaxed_loss = self._step(batch, tau, noise, step)
            bar.update(1)
            if step % self.check_every != 0 and step != self.iterations:
                continue
            check = self._check(batch)
            leaving = self._judge(step, batch, check, best, plateau, names)
            if self.max_seconds is not None and time.monotonic() - started > self.max_seconds:
                leaving = self._time_is_up(step, batch, leaving)
            history.record(step, tau, check, batch.images, best, relaxed_loss.tolist())
            if goals is not None:
                batch.set_lambdas([goals[i].next_lmbda(batch.lmbdas[j].item(), check.metrics.bpp[j], self.lmbda)
                                   for j, i in enumerate(batch.images)])
            batch.end_check(step, leaving)
            if not batch.images:
                break
            bar.set_postfix(true_loss=f"{best.mean('loss'):.4f}", bpp=f"{best.mean('bpp'):.4f}",
                            refining=len(batch.images))
        bar.close()
        return RefinementResult(best.y_hat, best.z_hat, best.x_hat, base.metrics, best.metrics, best.step,
                                batch.nonfinite_step, batch.stopped_step, batch.lmbda, history.entries, base_x_hat)

    def _check_images(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be a (B, 3, H, W) image batch, got shape {tuple(x.shape)}")
        if self.cuda_graphs and not x.is_cuda:
            raise ValueError(f"cuda_graphs needs the image on a CUDA device, got {x.device}")
        self.distortion.check_size(x.shape[-2:])

    def _start(self, x):
        """The batch's state before the first step: the codec's own latents of x, to be optimized."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        x = x.contiguous(memory_format=memory_format)
        with torch.no_grad():
            y = self.codec.analysis(pad_to_multiple(x, self.codec.multiple))
            z = self.codec.hyper_analysis(y)  # None: a codec without z
        return RefiningBatch(x, y, z, self.lr, self.lmbda, self.target is not None, memory_format)

    def _step(self, batch, tau, noise, step):
        """One relaxed step of every row (forward, backward, Adam); returns the rows' relaxed losses."""
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's graph outputs are done with
        rng = noise.of_step(step, batch.images)
        tau = torch.full((), tau, dtype=torch.float64, device=batch.x.device)
        with self._precision():
            with torch.autocast(batch.x.device.type, dtype=self.autocast_dtype,
                                enabled=self.autocast_dtype is not None):
                loss, centres = self._loss_of(batch.x, batch.y, batch.z, tau, rng, batch.lmbdas, batch.centres)
                loss = loss.float()
            if centres is not None:  # a cuda graph's outputs are overwritten by its next replay
                batch.centres = centres.clone() if self.cuda_graphs else centres
            batch.optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()
        batch.flag_nonfinite(loss)
        batch.optimizer.step()
        return loss.detach()

    def _loss_of(self, *args):
        """The relaxed loss, compiled when asked; when compiling fails, the eager loss from then on (one warning)."""
        if self._loss is self.relaxed_loss:
            return self.relaxed_loss(*args)
        try:
            return self._loss(*args)
        except torch._dynamo.exc.TorchDynamoException as error:
            cause = getattr(error, "inner_exception", None) or error  # a backend's own error, where it raised one
            reason = (str(cause).strip().splitlines() or [""])[0][:200]
            warnings.warn(f"compiling the relaxed loss failed ({type(cause).__name__}: {reason}); refining without "
                          f"compiling", RuntimeWarning, stacklevel=4)
            self._loss = self.relaxed_loss
            return self.relaxed_loss(*args)

    def _first_check(self, batch):
        """The base check. A codec with an exact encoder (a context model's) checks it exactly, as its decoder
        computes: the unrefined latents are the serial encoder's, as CompressAI's compress writes them. Where its
        parallel fixed point is further than DECODER_DRIFT_TOLERANCE from that (a context whose gain amplifies float
        rounding), every later check is exact too, so that what is reported is what the file decodes to."""
        base = self._check(batch, exact=self.codec.exact_encoder)
        if self.codec.exact_encoder:
            with torch.no_grad():  # from y, not from the exact y_hat: a sweep from there could settle at its
                parallel = self.codec.encoder_y(batch.y, base.z_hat)[0]  # first small step, hiding the drift
            batch.exact_checks = bool((parallel - base.y_hat).abs().max() > DECODER_DRIFT_TOLERANCE)
        return base

    def _check(self, batch, exact=False):
        """The true loss of every row: the hard latents the encoder writes (for a context model, its fixed point;
        exact, or when the batch's checks are: as its decoder computes them)."""
        with torch.no_grad():
            z_hat = None if batch.z is None else round_around(batch.z, self.codec.z_offsets())
            y_hat, entropy, centres, sweeps = self.codec.encoder_y(batch.y, z_hat, start=batch.start,
                                                                   exact=exact or batch.exact_checks)
            loss, bits, error, distortion, x_hat = self._rd_loss(batch.x, batch.size, y_hat, z_hat, entropy,
                                                                 clamp=True, lmbda=batch.lmbdas)
        if self.codec.context_model:
            batch.start = y_hat
            if batch.centres is None:  # the first relaxed step rounds around the encoder's means
                batch.centres = centres
        pixels = batch.size[0] * batch.size[1]
        return Check(self._metrics(loss, bits, error, distortion, pixels), x_hat, y_hat, z_hat, sweeps)

    def _judge(self, step, batch, check, best, plateau, names):
        """Each row's part of a check; returns the rows leaving the batch. A row that went non-finite since the last
        check leaves at its best latents (warned: its latents since then don't count); any other row's checked
        latents become its image's best if they beat it, and it leaves when early stopping finds a plateau."""
        leaving = []
        for j, (i, bad) in enumerate(zip(batch.images, batch.nonfinite_rows())):
            if bad:
                batch.nonfinite_step[i] = step
                leaving.append(j)
                warnings.warn(f"{names[i]}: non-finite relaxed loss or latents between steps {batch.last_check + 1} "
                              f"and {step}; it stops refining and keeps its best latents (from step "
                              f"{best.step[i]})", RuntimeWarning, stacklevel=3)
                continue
            best.offer(i, j, check, step)
            if plateau is not None and plateau.plateaued(i, best.metrics.loss[i]):
                batch.stopped_step[i] = step
                leaving.append(j)
        return leaving

    @staticmethod
    def _time_is_up(step, batch, leaving):
        """max_seconds: every row leaves at this check, those still refining as stopped here."""
        for j, i in enumerate(batch.images):
            if j not in leaving:
                batch.stopped_step[i] = step
        return list(range(len(batch.images)))

    def _progress_bar(self, names):
        """A tqdm bar naming the images (when progress is on and there are steps), else one that shows nothing."""
        if not (self.progress and self.iterations):
            return _NoProgressBar()
        from tqdm import tqdm
        label = ", ".join(names)
        return tqdm(total=self.iterations, unit="it",
                    desc=f"{self.method}: {label if len(label) <= 40 else label[:37] + '...'}")


class _NoProgressBar:
    def update(self, n):
        pass

    def set_postfix(self, **values):
        pass

    def close(self):
        pass
