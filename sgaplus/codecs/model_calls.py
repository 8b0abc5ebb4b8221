"""How the generic adapter calls a model whose forward, compress or decompress take more than CompressAI's
arguments (a quality map, a rate level, a file to write or read): `ModelCalls`, codec_for's `calls` argument
(docs/codecs.md, "Other signatures")."""
from dataclasses import dataclass
from typing import Callable


def own_forward(model, x):
    return model(x)


def own_compress(model, x):
    return model.compress(x)


def own_decompress(model, strings, shape):
    return model.decompress(strings, shape)


@dataclass(frozen=True)
class ModelCalls:
    """forward(model, x) -> the forward's dict ("x_hat", "likelihoods"); compress(model, x) -> {"strings": one list
    per coded latent, of one byte string per image, "shape": what decompress needs}; decompress(model, strings,
    shape) -> {"x_hat": ...}. Each defaults to CompressAI's call (model(x), model.compress(x),
    model.decompress(strings, shape)); give the others what they need, e.g. a constant quality map:
    `ModelCalls(forward=lambda model, x: model(x, torch.full_like(x[:, :1], 0.5)))`."""
    forward: Callable = own_forward
    compress: Callable = own_compress
    decompress: Callable = own_decompress
