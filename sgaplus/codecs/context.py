"""Adapter for CompressAI's context models: JointAutoregressiveHierarchicalPriors (mbt2018), Cheng2020Anchor and
Cheng2020Attention. y's entropy parameters come from h_s(z_hat) and a causal (masked 5x5) context of the
already-coded y_hat, so the hard y_hat the encoder writes is defined serially, position by position
(docs/refinement.md, "Context models")."""
import copy

import torch
import torch.nn.functional as F

from .compressai import CompressAIHyperprior
from .fixed_point import causal_fixed_point, round_around_means
from .tree import mask_context_weights

KERNEL = 5  # CompressAI's context prediction kernel (its compress and decompress assume it)
PAD = KERNEL // 2


class CompressAIContext(CompressAIHyperprior):
    """Wraps a CompressAI JointAutoregressiveHierarchicalPriors or Cheng2020 model (updated with model.update()).

    compress and decompress run on the CPU whatever device the codec is on: the decoder recomputes each
    position's means from its context, and the entropy coder needs the encoder's to be bit for bit the same.
    """
    context_model = True
    exact_encoder = True

    @staticmethod
    def wraps():
        from compressai.models import JointAutoregressiveHierarchicalPriors, ScaleHyperpriorVbr
        return (JointAutoregressiveHierarchicalPriors,), (ScaleHyperpriorVbr,)

    def __init__(self, model, model_id, lmbda=None):
        super().__init__(model, model_id, lmbda)
        if model.context_prediction.kernel_size != (KERNEL, KERNEL):
            raise TypeError(f"expected a {KERNEL}x{KERNEL} context prediction, "
                            f"got {model.context_prediction.kernel_size}")
        # CompressAI masks the weight in place when the layer runs forward, and its decoder reads the weight
        # unmasked: mask it once here, so every path below and the decoder use the same (masked) weight
        mask_context_weights(model)
        self._cpu_model = None

    def to(self, device):
        self.model.to(device)
        self._cpu_model = None
        return self

    def hyper_synthesis(self, z_hat, y_shape):
        """h_s(z_hat) cropped to y_shape: the hyperprior's half of y's entropy parameters."""
        return self.model.h_s(z_hat)[..., :y_shape[-2], :y_shape[-1]]

    def gaussian_parameters(self, hyper, y_hat, model=None, crop=False):
        """(scales, means) of every position of y at once, each from the causal context of y_hat; crop: y_hat is
        the 5x5 crop around one position of the zero-padded y_hat, as the decoder computes it."""
        model = self.model if model is None else model
        layer = model.context_prediction
        context = F.conv2d(y_hat, layer.weight, layer.bias, padding=0 if crop else PAD)
        return model.entropy_parameters(torch.cat((hyper, self.context_shift(context, model)), dim=1)).chunk(2, 1)

    def context_shift(self, context, model):
        """The context as the entropy parameters take it (a variable-rate model adds a term of its rate)."""
        return context

    def symbols(self, y, scales, means):
        """(symbols, y_hat) the coder makes of y, given its entropy parameters."""
        return round_around_means(y, scales, means)

    def recovered_symbols(self, y_hat, scales, means):
        """The symbols of a hard y_hat (one the coder made)."""
        return torch.round(y_hat - means)

    def indexes(self, gaussian_conditional, scales):
        """The coder's table indexes of the scales."""
        return gaussian_conditional.build_indexes(scales)

    def y_latents(self, y, z_hat, rounding, centres=None):
        """The relaxation: y rounded around centres (the previous iterate's means; without them, the means of y's
        own context), then scales and means from the context of the rounded y_hat; the means, detached, are the
        next step's centres."""
        hyper = self.hyper_synthesis(z_hat, y.shape)
        if centres is None:
            centres = self.gaussian_parameters(hyper, y.detach())[1]
        y_hat = rounding(y, centres)
        scales, means = self.gaussian_parameters(hyper, y_hat)
        return y_hat, (scales, means), means.detach()

    def encoder_y(self, y, z_hat, start=None, exact=False):
        """The encoder's hard y_hat by a parallel fixed-point iteration (fixed_point.py); serial when it does not
        converge (sweeps is then MAX_SWEEPS + 1). Its means are the first relaxed step's centres. exact: computed as
        the decoder computes (`decoder_y`): the serial encoder's symbols and the decoder's values, bit for bit (the
        fixed point's agree to float precision times the context's gain; sweeps is then 0)."""
        if exact:
            y_hat = self.decoder_y(y, z_hat)
            return (y_hat, *self.entropy_of(self.hyper_synthesis(z_hat, y.shape), y_hat), 0)
        hyper = self.hyper_synthesis(z_hat, y.shape)
        y_hat, _, _, sweeps = causal_fixed_point(
            y, lambda y_hat: self.gaussian_parameters(hyper, y_hat), start,
            lambda: torch.cat([self.serial_y(y[i:i + 1], hyper[i:i + 1])[0] for i in range(y.shape[0])]),
            self.symbols)
        return (y_hat, *self.entropy_of(hyper, y_hat), sweeps)

    def entropy_of(self, hyper, y_hat):
        """(entropy, centres) of a hard y_hat: what `bits` needs (its scales and means) and the rounding centres."""
        scales, means = self.gaussian_parameters(hyper, y_hat)
        return (scales, means), means

    def decoder_y(self, y, z_hat, hard=False):
        """y_hat as the decoder computes it: on the CPU, position by position with its operations, from h_s of z_hat
        as the entropy bottleneck decodes it. hard: y is a hard y_hat (its symbols are kept, its values made the
        decoder's); otherwise y is rounded as the serial encoder rounds it (CompressAI's compress)."""
        model, device, y, z_hat = self._cpu(), y.device, y.cpu(), z_hat.cpu()
        y_hat = [self.serial_y(y[i:i + 1], self.decoder_hyper(model, z_hat[i:i + 1]), model, hard)[0]
                 for i in range(y.shape[0])]
        return torch.cat(y_hat).to(device)

    @staticmethod
    def decoder_hyper(model, z_hat, z_strings=None):
        """h_s of one image's z_hat (1, C, h, w) as the decoder has it: decoded from its strings (z_strings: the
        entropy bottleneck's, when they are already made)."""
        eb = model.entropy_bottleneck
        return model.h_s(eb.decompress(eb.compress(z_hat) if z_strings is None else z_strings, z_hat.shape[-2:]))

    def serial_y(self, y, hyper, model=None, hard=False):
        """(y_hat, symbols, scale indexes) of one image (1, M, H, W), position by position in raster order, with
        the operations CompressAI's decoder performs (a 5x5 crop of the zero-padded y_hat, the 1x1 entropy
        parameters): the means are the decoder's, bit for bit. model: the CompressAI model to compute with; hard:
        y is already a hard y_hat (its symbols are recovered, not made)."""
        model = self.model if model is None else model
        _, channels, height, width = y.shape
        y_hat = y.new_zeros((1, channels, height + 2 * PAD, width + 2 * PAD))
        symbols, indexes = [], []
        for h in range(height):
            for w in range(width):
                scales, means = self.gaussian_parameters(hyper[:, :, h:h + 1, w:w + 1],
                                                         y_hat[:, :, h:h + KERNEL, w:w + KERNEL], model, crop=True)
                value = y[:, :, h:h + 1, w:w + 1]
                if hard:
                    symbol = self.recovered_symbols(value, scales, means)
                    item = self.reconstruction(symbol, scales, means)
                else:
                    symbol, item = self.symbols(value, scales, means)
                y_hat[:, :, h + PAD:h + PAD + 1, w + PAD:w + PAD + 1] = item
                symbols.append(symbol.reshape(-1))
                indexes.append(self.indexes(model.gaussian_conditional, scales).reshape(-1))
        return y_hat[..., PAD:-PAD, PAD:-PAD], torch.stack(symbols), torch.stack(indexes)

    def reconstruction(self, symbols, scales, means):
        """The decoder's y_hat of symbols."""
        return symbols + means

    def _cpu(self):
        """The model on the CPU (a copy when the codec lives elsewhere)."""
        if next(self.model.parameters()).device.type == "cpu":
            return self.model
        if self._cpu_model is None:
            self._cpu_model = copy.deepcopy(self.model).cpu()
        return self._cpu_model

    def compress_image(self, y_hat, z_hat):
        """The serial encoder on y_hat (from encoder_y, so each symbol is round(y_hat - mean) exactly) with the
        decoder's operations, then CompressAI's rANS coder with its tables."""
        from compressai.ans import BufferedRansEncoder
        model = self._cpu()
        gc = model.gaussian_conditional
        y_hat, z_hat = y_hat.cpu(), z_hat.cpu()
        z_strings = model.entropy_bottleneck.compress(z_hat)
        _, symbols, indexes = self.serial_y(y_hat, self.decoder_hyper(model, z_hat, z_strings), model, hard=True)
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols.int().reshape(-1).tolist(), indexes.int().reshape(-1).tolist(),
                                    gc.quantized_cdf.tolist(), gc.cdf_length.tolist(), gc.offset.tolist())
        return [encoder.flush(), z_strings[0]]

    def decompress(self, strings, z_size):
        return self._cpu().decompress([[strings[0]], [strings[1]]], z_size)["x_hat"]

