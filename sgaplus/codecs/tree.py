"""Walking a tree of CompressAI latent codecs (compressai.latent_codecs) to relax, harden and price y.

A node stands for one latent codec of the tree that codes y (below a HyperpriorLatentCodec, or at the root without
z) and computes, for its part of y and the parameters its parent hands it:

- `run(y, params, rounding, centres, stream)` -> (y_hat, scales, means): y rounded part by part in the order the
  codec decodes it, each part around the means its codec predicts from the parts already rounded. `rounding` is
  the refiner's relaxed rounding (soft: gradients flow through every pass, as the passes are fixed in number) or
  `hard_rounding` (the encoder's y_hat: the same passes with torch.round). Tensors are assembled to y's shape.
- `bits(y_hat, scales, means)` -> bits per image (B,), from the entropy models of the node's leaves.
- `coded_shape(y_shape)` -> the `shape` its codec's compress returns (what its decompress needs), and `strings`:
  how many strings per image its compress writes.

The passes use the codec's own methods in the order its `compress` uses them (checkerboard halves, channel groups,
the merge functions, CompressAI's own masking), so the hard y_hat and its means are the encoder's, bit for bit.
A raster-scan context is sequential: it is relaxed around the previous iterate's means (`centres`) and hardened by
a parallel fixed point (docs/refinement.md, "Context models"; "Latent-codec models").
"""
import torch
import torch.nn as nn

from .base import hard_rounding
from .compressai import bottleneck_bits, gaussian_bits
from .fixed_point import causal_fixed_point


def masked_conv(layer, x):
    """A CompressAI masked convolution of x with its (already masked) weight, without its forward's in-place
    re-masking of the weight (which torch.compile cannot trace)."""
    return nn.Conv2d._conv_forward(layer, x, layer.weight, layer.bias)


def mask_context_weights(module):
    """Mask every masked convolution's weight once, in place: CompressAI masks it in forward, but some of its
    decoders read the raw weight; after this, every path computes with the same masked weight."""
    from compressai.layers import MaskedConv2d
    for layer in module.modules():
        if isinstance(layer, MaskedConv2d):
            layer.weight.data *= layer.mask


def nodes_of(node):
    """The node and every node below it."""
    yield node
    for child in getattr(node, "children", ()):
        yield from nodes_of(child)


def node_for(codec):
    """The node of a latent codec that codes y; TypeError for one sgaplus cannot refine."""
    from compressai.latent_codecs import (
        ChannelGroupsLatentCodec,
        CheckerboardLatentCodec,
        EntropyBottleneckLatentCodec,
        GaussianConditionalLatentCodec,
        RasterScanLatentCodec,
    )
    nodes = ((GaussianConditionalLatentCodec, GaussianNode), (CheckerboardLatentCodec, CheckerboardNode),
             (ChannelGroupsLatentCodec, ChannelGroupsNode), (RasterScanLatentCodec, RasterScanNode),
             (EntropyBottleneckLatentCodec, BottleneckNode))
    for cls, node in nodes:
        if isinstance(codec, cls):
            return node(codec)
    raise TypeError(f"sgaplus cannot refine y coded by a {type(codec).__name__}: it refines y coded by "
                    f"{', '.join(cls.__name__ for cls, _ in nodes)}")


class GaussianNode:
    """GaussianConditionalLatentCodec: entropy_parameters(params) gives (scales, means) at once."""
    needs_centres = False
    strings = 1

    def __init__(self, codec):
        if codec.chunks not in (("scales", "means"), ("means", "scales"), ("scales",)):
            raise TypeError(f"a GaussianConditionalLatentCodec with chunks {codec.chunks} has no scales")
        self.codec = codec

    def run(self, y, params, rounding, centres=None, stream=0):
        scales, means = self.codec._chunk(self.codec.entropy_parameters(params))
        means = torch.zeros_like(y) if means is None else means  # coded around 0
        return rounding(y, means, stream), scales, means

    def bits(self, y_hat, scales, means):
        return gaussian_bits(self.codec.gaussian_conditional, y_hat, scales, means)

    def coded_shape(self, y_shape):
        return torch.Size(y_shape[-2:])


class CheckerboardNode:
    """CheckerboardLatentCodec: the anchors from the side parameters alone, then the non-anchors from those and
    the anchors' context. Computed on the two checkerboard halves, as its compress does."""
    needs_centres = False
    strings = 2

    def __init__(self, codec):
        self.codec = codec
        self.leaf = node_for(codec.latent_codec["y"])
        if not isinstance(self.leaf, GaussianNode):
            raise TypeError("a CheckerboardLatentCodec must code its y with a GaussianConditionalLatentCodec")

    def run(self, y, side_params, rounding, centres=None, stream=0):
        cb = self.codec
        y_, side_ = cb.unembed(y), cb.unembed(side_params)
        anchors = None
        outputs = []
        for i in range(2):  # 0: anchors (their context is all zeros), 1: non-anchors
            if anchors is None:
                context = side_params.new_zeros((y.shape[0], cb.context_prediction.out_channels, *y_.shape[-2:]))
            else:
                context = cb.unembed(masked_conv(cb.context_prediction, cb.embed(
                    torch.stack((anchors, torch.zeros_like(anchors))))))[i]
            params = cb.entropy_parameters(cb.merge(context, side_[i]))
            outputs.append(self.leaf.run(y_[i], params, rounding, stream=stream + i))
            anchors = outputs[0][0]
        return tuple(cb.embed(torch.stack(parts)) for parts in zip(*outputs))

    def bits(self, y_hat, scales, means):
        return self.leaf.bits(y_hat, scales, means)

    def coded_shape(self, y_shape):
        return torch.Size(y_shape[-3:])


class ChannelGroupsNode:
    """ChannelGroupsLatentCodec: group k's parameters from the side parameters and the groups before it."""

    def __init__(self, codec):
        self.codec = codec
        self.children = [node_for(codec.latent_codec[f"y{k}"]) for k in range(len(codec.groups))]
        self.needs_centres = any(child.needs_centres for child in self.children)
        self.strings = sum(child.strings for child in self.children)

    def split(self, tensor):
        return [None] * len(self.children) if tensor is None else torch.split(tensor, self.codec.groups, dim=1)

    def run(self, y, side_params, rounding, centres=None, stream=0):
        hats, outputs = [], []
        for k, (part, centre) in enumerate(zip(self.split(y), self.split(centres))):
            params = self.codec._get_ctx_params(k, side_params, hats)
            outputs.append(self.children[k].run(part, params, rounding, centre, stream + 2 * k))
            hats.append(outputs[-1][0])
        return tuple(torch.cat(parts, dim=1) for parts in zip(*outputs))

    def bits(self, y_hat, scales, means):
        parts = zip(self.children, self.split(y_hat), self.split(scales), self.split(means))
        return sum(child.bits(*tensors) for child, *tensors in parts)

    def coded_shape(self, y_shape):
        return [child.coded_shape((size, *y_shape[-2:])) for child, size in zip(self.children, self.codec.groups)]


class RasterScanNode:
    """RasterScanLatentCodec: each position's parameters from the side parameters and a causal context of the
    positions before it in raster order (docs/refinement.md, "Context models")."""
    needs_centres = True
    strings = 1

    def __init__(self, codec):
        self.codec = codec
        self.sweeps = 0

    def parameters(self, side_params, y_hat):
        """(scales, means) of every position at once, each from the causal context of y_hat."""
        context = masked_conv(self.codec.context_prediction, y_hat)
        return self.codec.entropy_parameters(self.codec.merge(side_params, context)).chunk(2, 1)

    def run(self, y, side_params, rounding, centres=None, stream=0):
        """Relaxed: around centres (the previous iterate's means). Hard: the fixed point, started from centres (the
        previous check's y_hat) when given; its sweeps are kept in self.sweeps."""
        if rounding is hard_rounding:
            y_hat, scales, means, self.sweeps = self.fixed_point(y, side_params, centres)
            return y_hat, scales, means
        if centres is None:  # the first relaxed step: around the means of y's own context
            centres = self.parameters(side_params, y.detach())[1]
        y_hat = rounding(y, centres, stream)
        scales, means = self.parameters(side_params, y_hat)
        return y_hat, scales, means

    def fixed_point(self, y, side_params, start=None):
        return causal_fixed_point(y, lambda y_hat: self.parameters(side_params, y_hat), start,
                                  lambda: self.codec.compress(y, side_params)["y_hat"])

    def bits(self, y_hat, scales, means):
        return gaussian_bits(self.codec.gaussian_conditional, y_hat, scales, means)

    def coded_shape(self, y_shape):
        return torch.Size(y_shape[-2:])


class BottleneckNode:
    """EntropyBottleneckLatentCodec (y alone, no parameters): y rounded around the bottleneck's medians."""
    needs_centres = False
    strings = 1

    def __init__(self, codec):
        self.codec = codec

    def medians(self):
        return self.codec.entropy_bottleneck._get_medians().detach().reshape(1, -1, 1, 1)

    def run(self, y, params, rounding, centres=None, stream=0):
        means = self.medians()
        return rounding(y, means, stream), None, means.expand_as(y)

    def bits(self, y_hat, scales, means):
        return bottleneck_bits(self.codec.entropy_bottleneck, y_hat)

    def coded_shape(self, y_shape):
        return torch.Size(y_shape[-2:])
