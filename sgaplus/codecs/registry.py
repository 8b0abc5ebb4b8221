"""The codec architectures sgaplus refines: one registry from a CompressAI architecture name to its
adapter. Model classes, zoo loaders and zoo qualities come from CompressAI's own tables."""
from ..errors import SgaplusError

# CompressAI's MSE training lambdas per zoo quality (its documentation lists them; its zoo has no table).
ZOO_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}

_ADAPTERS = {}  # architecture name -> HyperpriorCodec subclass taking (model, model_id, lmbda)


class UnknownArchitecture(SgaplusError, ValueError):
    """An architecture name that no adapter is registered for."""


def register(name, adapter):
    """Make `name` (a key of compressai.zoo.image.model_architectures) refinable through `adapter`."""
    _ADAPTERS[name] = adapter
    return adapter


def architectures():
    """The registered architecture names, in registration order."""
    return tuple(_ADAPTERS)


def adapter(name):
    if name not in _ADAPTERS:
        raise UnknownArchitecture(f"unknown architecture {name!r}; known: {', '.join(_ADAPTERS)}")
    return _ADAPTERS[name]


def build_model(name, N, M):
    """An untrained model of a registered architecture with N, M channels (Cheng et al.'s models have M = N)."""
    import inspect

    from compressai.zoo.image import model_architectures
    adapter(name)
    # CompressAI's table spells one architecture with underscores (bmshj2018_factorized_relu)
    cls = model_architectures.get(name) or model_architectures[name.replace("-", "_")]
    if "M" not in inspect.signature(cls.__init__).parameters:
        if M != N:
            raise ValueError(f"{name} has M = N; got N={N}, M={M}")
        return cls(N=N)
    return cls(N=N, M=M)


def zoo_qualities(name):
    """The qualities CompressAI's zoo has weights for."""
    from compressai.zoo.image import cfgs
    adapter(name)
    return tuple(sorted(cfgs[name]))


def zoo_model(name, quality):
    """CompressAI's pretrained model (downloads its weights on first use)."""
    from compressai import zoo
    return zoo.models[name](quality=quality, pretrained=True)
