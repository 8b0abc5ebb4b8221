"""Small models written the way three published families of learned codecs are, from their papers' descriptions,
for the generic adapter's tests (tests/test_forward_checkerboard.py):

- `ElicStyle`: y in uneven channel groups (as ELIC's open reimplementation: 16, 16, 32, 64, M - 128, scaled down),
  a checkerboard inside each group. Per group, in forward: full-size masked copies of the anchors and the
  non-anchors (new tensors, zeros elsewhere); the anchors rounded straight-through first, around their means
  from the hyperprior and the earlier groups; a local context over the rounded anchors gives the non-anchors'
  means and scales; then one GaussianConditional call on the whole group with the merged parameters; then the
  non-anchors rounded straight-through; the group's latents are anchor + non-anchor.
- `MlicStyle`: the same with a latent residual prediction for the anchors and for the non-anchors, and a second
  context over the earlier groups and the group's anchors (MLIC++'s global context, here a convolution).
- `StfStyle`: the channel-conditional family with its analysis inline in forward (STF: a patch embedding, then a
  loop of layers over tokens, then a reshape): there is no g_a module.

Their compress and decompress code the anchors, then the non-anchors, of each group as separate strings."""
import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from compressai.models.utils import conv
from published_models import ChannelConditional, analysis, hyper_synthesis, ste_round, synthesis, transform

GROUPS = (2, 2, 4, 8, 16)  # ELIC's 16, 16, 32, 64, M - 128 at M = 320, scaled to M = 32


def anchors(t):
    """A full-size copy of t holding its anchors (even rows' odd columns, odd rows' even columns), zeros elsewhere."""
    out = torch.zeros_like(t)
    out[..., 0::2, 1::2] = t[..., 0::2, 1::2]
    out[..., 1::2, 0::2] = t[..., 1::2, 0::2]
    return out


def non_anchors(t):
    out = torch.zeros_like(t)
    out[..., 0::2, 0::2] = t[..., 0::2, 0::2]
    out[..., 1::2, 1::2] = t[..., 1::2, 1::2]
    return out


def packed(t, anchor):
    """The anchors (or non-anchors) of t side by side: (B, C, H, W / 2)."""
    first = 1 if anchor else 0
    out = t.new_empty(*t.shape[:-1], t.shape[-1] // 2)
    out[..., 0::2, :] = t[..., 0::2, first::2]
    out[..., 1::2, :] = t[..., 1::2, 1 - first::2]
    return out


def unpacked(t, anchor):
    first = 1 if anchor else 0
    out = t.new_zeros(*t.shape[:-1], t.shape[-1] * 2)
    out[..., 0::2, first::2] = t[..., 0::2, :]
    out[..., 1::2, 1 - first::2] = t[..., 1::2, :]
    return out


class ElicStyle(CompressionModel):
    """Checkerboard inside uneven channel groups, with a channel context over the earlier groups."""

    def __init__(self, N=16, M=32, groups=GROUPS):
        super().__init__()
        self.groups = list(groups)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.g_a, self.g_s = analysis(N, M), synthesis(N, M)
        self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(), conv(N, N, 5, 2), nn.ReLU(), conv(N, N, 5, 2))
        self.h_s = hyper_synthesis(N, 2 * M)
        before = [sum(self.groups[:i]) for i in range(len(self.groups))]
        self.channel_context = nn.ModuleList(transform(c, 2 * g) for c, g in zip(before[1:], self.groups[1:]))
        self.local_context = nn.ModuleList(conv(g, 2 * g, 5, 1) for g in self.groups)
        support = [2 * M + 2 * g * (i > 0) for i, g in enumerate(self.groups)]
        self.anchor_parameters = nn.ModuleList(transform(s, 2 * g) for s, g in zip(support, self.groups))
        self.non_anchor_parameters = nn.ModuleList(transform(s + 2 * g, 2 * g) for s, g in zip(support, self.groups))

    def support(self, i, hyper, decoded):
        return torch.cat([hyper] + ([self.channel_context[i - 1](torch.cat(decoded, 1))] if i else []), 1)

    def anchor_params(self, i, support):
        scales, means = self.anchor_parameters[i](support).chunk(2, 1)
        return anchors(scales), anchors(means)

    def non_anchor_params(self, i, support, decoded, y_hat_anchor):
        context = self.local_context[i](y_hat_anchor)
        scales, means = self.non_anchor_parameters[i](torch.cat([support, context], 1)).chunk(2, 1)
        return non_anchors(scales), non_anchors(means)

    def with_anchor_residual(self, i, support, y_hat_anchor):
        return y_hat_anchor

    def with_residual(self, i, support, y_hat_anchor, y_hat_non_anchor):
        return y_hat_anchor + y_hat_non_anchor

    def forward(self, x):
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        hyper = self.h_s(ste_round(z - z_offset) + z_offset)
        decoded, likelihoods = [], []
        for i, y_slice in enumerate(y.split(self.groups, 1)):
            support = self.support(i, hyper, decoded)
            scales_anchor, means_anchor = self.anchor_params(i, support)
            y_hat_anchor = ste_round(anchors(y_slice) - means_anchor) + means_anchor
            y_hat_anchor = self.with_anchor_residual(i, support, y_hat_anchor)
            scales_non, means_non = self.non_anchor_params(i, support, decoded, y_hat_anchor)
            _, likelihood = self.gaussian_conditional(y_slice, scales_anchor + scales_non, means_anchor + means_non)
            y_hat_non = ste_round(non_anchors(y_slice) - means_non) + means_non
            decoded.append(self.with_residual(i, support, y_hat_anchor, y_hat_non))
            likelihoods.append(likelihood)
        x_hat = self.g_s(torch.cat(decoded, 1))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, 1), "z": z_likelihoods}}

    def code_half(self, y_slice, scales, means, anchor, strings):
        """Code one half of a group (appends its string); returns its dequantized values, full size."""
        scales, means = packed(scales, anchor), packed(means, anchor)
        indexes = self.gaussian_conditional.build_indexes(scales)
        strings.append(self.gaussian_conditional.compress(packed(y_slice, anchor), indexes, means=means))
        return unpacked(self.gaussian_conditional.quantize(packed(y_slice, anchor), "dequantize", means), anchor)

    def decode_half(self, string, scales, means, anchor):
        scales, means = packed(scales, anchor), packed(means, anchor)
        indexes = self.gaussian_conditional.build_indexes(scales)
        return unpacked(self.gaussian_conditional.decompress(string, indexes, means=means), anchor)

    def compress(self, x):
        y = self.g_a(x)
        z = self.h_a(y)
        z_strings = self.entropy_bottleneck.compress(z)
        hyper = self.h_s(self.entropy_bottleneck.decompress(z_strings, z.size()[-2:]))
        decoded, strings = [], []
        for i, y_slice in enumerate(y.split(self.groups, 1)):
            support = self.support(i, hyper, decoded)
            y_hat_anchor = self.code_half(y_slice, *self.anchor_params(i, support), True, strings)
            y_hat_anchor = self.with_anchor_residual(i, support, y_hat_anchor)
            y_hat_non = self.code_half(y_slice, *self.non_anchor_params(i, support, decoded, y_hat_anchor), False,
                                       strings)
            decoded.append(self.with_residual(i, support, y_hat_anchor, y_hat_non))
        return {"strings": strings + [z_strings], "shape": z.size()[-2:]}

    def decompress(self, strings, shape):
        hyper = self.h_s(self.entropy_bottleneck.decompress(strings[-1], shape))
        decoded = []
        for i in range(len(self.groups)):
            support = self.support(i, hyper, decoded)
            y_hat_anchor = self.decode_half(strings[2 * i], *self.anchor_params(i, support), True)
            y_hat_anchor = self.with_anchor_residual(i, support, y_hat_anchor)
            params = self.non_anchor_params(i, support, decoded, y_hat_anchor)
            y_hat_non = self.decode_half(strings[2 * i + 1], *params, False)
            decoded.append(self.with_residual(i, support, y_hat_anchor, y_hat_non))
        return {"x_hat": self.g_s(torch.cat(decoded, 1)).clamp_(0, 1)}


class MlicStyle(ElicStyle):
    """ElicStyle plus a latent residual prediction for the anchors and for the non-anchors, and a second context
    for the non-anchors over the earlier groups and the group's anchors."""

    def __init__(self, N=16, M=32, groups=GROUPS):
        super().__init__(N, M, groups)
        before = [sum(self.groups[:i]) for i in range(len(self.groups))]
        support = [2 * M + 2 * g * (i > 0) for i, g in enumerate(self.groups)]
        self.global_context = nn.ModuleList(transform(c + g, 2 * g) for c, g in zip(before, self.groups))
        self.non_anchor_parameters = nn.ModuleList(transform(s + 4 * g, 2 * g) for s, g in zip(support, self.groups))
        self.anchor_lrp = nn.ModuleList(transform(s + g, g) for s, g in zip(support, self.groups))
        self.non_anchor_lrp = nn.ModuleList(transform(s + g, g) for s, g in zip(support, self.groups))

    def non_anchor_params(self, i, support, decoded, y_hat_anchor):
        local = self.local_context[i](y_hat_anchor)
        wider = self.global_context[i](torch.cat(decoded + [y_hat_anchor], 1))
        scales, means = self.non_anchor_parameters[i](torch.cat([support, local, wider], 1)).chunk(2, 1)
        return non_anchors(scales), non_anchors(means)

    def with_anchor_residual(self, i, support, y_hat_anchor):
        residual = self.anchor_lrp[i](torch.cat([support, y_hat_anchor], 1))
        return y_hat_anchor + anchors(0.5 * torch.tanh(residual))

    def with_residual(self, i, support, y_hat_anchor, y_hat_non_anchor):
        y_hat = y_hat_anchor + y_hat_non_anchor
        residual = self.non_anchor_lrp[i](torch.cat([support, y_hat], 1))
        return y_hat + non_anchors(0.5 * torch.tanh(residual))


class TokenLayer(nn.Module):
    """A layer over tokens (B, h * w, C): a residual MLP, then a 2x2 patch merging to `out` channels."""

    def __init__(self, channels, out):
        super().__init__()
        self.norm, self.mlp = nn.LayerNorm(channels), nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(),
                                                                      nn.Linear(2 * channels, channels))
        self.merge = nn.Linear(4 * channels, out)

    def forward(self, x, h, w):
        x = x + self.mlp(self.norm(x))
        x = x.view(x.shape[0], h // 2, 2, w // 2, 2, x.shape[-1]).permute(0, 1, 3, 2, 4, 5)
        return self.merge(x.reshape(x.shape[0], (h // 2) * (w // 2), -1)), h // 2, w // 2


class StfStyle(ChannelConditional):
    """The channel-conditional family (slices, latent residual prediction) with the analysis written in forward:
    a patch embedding, a loop of token layers, a reshape to y. No g_a module."""

    def __init__(self, N=16, M=32, slices=4):
        super().__init__(N, M, slices)
        del self.g_a
        self.M = M
        self.patch_embed = nn.Conv2d(3, N, kernel_size=2, stride=2)
        self.layers = nn.ModuleList([TokenLayer(N, N), TokenLayer(N, N), TokenLayer(N, M)])

    def forward(self, x):
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x, h, w = layer(x, h, w)
        y = x.view(-1, h, w, self.M).permute(0, 3, 1, 2).contiguous()
        return self.latents_forward(y)

    def compress(self, x):
        x = self.patch_embed(x)
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x, h, w = layer(x, h, w)
        return self.latents_compress(x.view(-1, h, w, self.M).permute(0, 3, 1, 2).contiguous())
