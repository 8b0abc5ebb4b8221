"""How the generic adapter calls a model whose forward, compress or decompress take more than CompressAI's
arguments (a quality map, a rate level, a file to write or read): `ModelCalls`, codec_for's `calls` argument
(docs/codecs.md, "Other signatures")."""
import inspect
from dataclasses import dataclass
from typing import Callable

ADVICE = ("say how to call it with calls=sgaplus.ModelCalls(...) (on the command line: --model-calls FILE.py:NAME; "
          "docs/codecs.md, \"Other signatures\")")
CALLED_AS = {"forward": ("x",), "compress": ("x",), "decompress": ("strings", "shape")}  # CompressAI's calls


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


def call_refusal(model, method, names=()):
    """None where model.<method> can be called as CompressAI calls it (CALLED_AS) with these keywords, else why not
    (one line)."""
    signature, leading = inspect.signature(getattr(model, method)), CALLED_AS[method]
    try:
        signature.bind(*leading, **dict.fromkeys(names))
    except TypeError as error:
        given = f" with the compress call's {', '.join(names)}" if names else ""
        return f"{type(model).__name__}.{method}{signature} cannot be called ({', '.join(leading)}){given} ({error})"
    return None
