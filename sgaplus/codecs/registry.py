"""The codec architectures sgaplus refines: every image model CompressAI registers (compressai.registry.MODELS,
without its point-cloud and video models), each refined through the adapter that takes its class. Model classes,
zoo loaders and zoo qualities come from CompressAI's own tables; nothing here lists architectures by name."""
import bisect
import inspect
import math
import re
import warnings

from ..errors import SgaplusError

# the training lambdas of CompressAI's zoo per metric and quality (its documentation's table)
ZOO_LAMBDAS = {"mse": {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800},
               "ms-ssim": {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.00}}

NOT_IMAGE_MODELS = ("pointcloud", "video")  # compressai.models subpackages of models that do not code images
# a channel-groups model's group k: its checkerboard context takes the group's channels
GROUP_CONTEXT_KEY = re.compile(r"latent_codec\.y\.latent_codec\.y(\d+)\.context_prediction\.weight")

_ADAPTERS = []  # HyperpriorCodec subclasses taking (model, model_id, lmbda), the most specific first


class UnknownArchitecture(SgaplusError, ValueError):
    """An architecture name that is not one of CompressAI's image models."""


def register(adapter):
    """Refine every model of the CompressAI classes adapter.wraps() names through `adapter` (registered earlier
    adapters take precedence: register the more specific first)."""
    _ADAPTERS.append(adapter)
    return adapter


def image_models():
    """{name: class} of CompressAI's registered image models."""
    with warnings.catch_warnings():  # compressai's first import scripts functions with a deprecated torch.jit
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")
        from compressai.registry import MODELS
    return {name: cls for name, cls in MODELS.items()
            if not any(f".{part}." in f"{cls.__module__}." for part in NOT_IMAGE_MODELS)}


def adapter_for_class(cls):
    """The adapter whose wrapped classes include cls (and exclude none of its bases), or None."""
    for candidate in _ADAPTERS:
        classes, excluded = candidate.wraps()
        if issubclass(cls, classes) and not issubclass(cls, excluded):
            return candidate
    return None


def architectures():
    """The refinable architecture names: CompressAI's image models that an adapter takes, in its order."""
    return tuple(name for name, cls in image_models().items() if adapter_for_class(cls) is not None)


def model_class(name):
    models = image_models()
    if name not in models or adapter_for_class(models[name]) is None:
        raise UnknownArchitecture(f"unknown architecture {name!r}; known: {', '.join(architectures())}")
    return models[name]


def adapter(name):
    return adapter_for_class(model_class(name))


def build_model(name, N, M, options=None):
    """An untrained model of a registered architecture with N, M channels (Cheng et al.'s models have M = N) and
    the class's other keyword arguments in options (e.g. ELIC's channel groups)."""
    cls = model_class(name)
    parameters = inspect.signature(cls.__init__).parameters
    options = dict(options or {})
    unknown = [key for key in options if key not in parameters or key in ("N", "M")]
    if unknown:
        raise ValueError(f"{name} takes no option {', '.join(map(repr, unknown))}")
    if "M" not in parameters:
        if M != N:
            raise ValueError(f"{name} has M = N; got N={N}, M={M}")
        return cls(N=N, **options)
    return cls(N=N, M=M, **options)


def model_from_state_dict(name, state_dict):
    """A model of a registered architecture holding a plain CompressAI state dict (the way weights are published),
    its sizes read off the weights as the class's from_state_dict does; the class's other arguments are inferred
    where CompressAI's from_state_dict would assume its defaults: channel groups (from each group's context
    convolution) and a variable-rate z step (vr_entbttlnck, from its network's weights). Raises KeyError,
    RuntimeError or ValueError when the weights do not fit."""
    from compressai.zoo.pretrained import load_pretrained
    cls = model_class(name)
    state_dict = load_pretrained(state_dict)
    parameters = inspect.signature(cls.__init__).parameters
    if "groups" in parameters:
        matches = ((GROUP_CONTEXT_KEY.fullmatch(key), weight) for key, weight in state_dict.items())
        sizes = {int(match.group(1)): weight.shape[1] for match, weight in matches if match}
        if not sizes or sorted(sizes) != list(range(len(sizes))):
            raise KeyError("no channel groups' context weights")
        groups = [sizes[k] for k in range(len(sizes))]
        model = build_model(name, state_dict["g_a.0.weight"].shape[0], sum(groups), {"groups": groups})
        model.load_state_dict(state_dict)
        return model
    options = {}
    if "vr_entbttlnck" in inspect.signature(cls.from_state_dict).parameters:
        options["vr_entbttlnck"] = any(key.startswith("gayn2zqstep.") for key in state_dict)
    return cls.from_state_dict(state_dict, **options)


def equivalent_lambda(lmbda, metric, other):
    """The `other` metric's lambda at the place `lmbda` has among CompressAI's `metric` lambdas (log-linear between
    its qualities, extended along the end segments): a lambda of the same rate region for the other distortion."""
    source, target = (sorted(ZOO_LAMBDAS[name].values()) for name in (metric, other))
    k = min(max(bisect.bisect(source, lmbda) - 1, 0), len(source) - 2)  # the segment lmbda lies on (or beyond)
    place = math.log(lmbda / source[k]) / math.log(source[k + 1] / source[k])
    return target[k] * (target[k + 1] / target[k]) ** place


def zoo_qualities(name, metric="mse"):
    """The qualities CompressAI's zoo has weights for, trained for metric (none for the models it has no weights
    of)."""
    from compressai.zoo.image import cfgs, model_urls
    model_class(name)
    if metric == "mse":
        return tuple(sorted(cfgs.get(name, ())))
    return tuple(sorted(model_urls.get(name, {}).get(metric, ())))


def has_zoo_weights(name):
    """Whether CompressAI's zoo has pretrained weights of the architecture."""
    from compressai import zoo
    from compressai.zoo.image_vbr import model_urls
    return bool(zoo_qualities(name)) or (name in zoo.models and name in model_urls)


def zoo_model(name, quality, metric="mse"):
    """CompressAI's pretrained model trained for metric (downloads its weights on first use)."""
    from compressai import zoo
    return zoo.models[name](quality=quality, pretrained=True, **({} if metric == "mse" else {"metric": metric}))
