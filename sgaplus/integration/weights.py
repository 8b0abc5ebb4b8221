"""What sgaplus knows of a model's weights: the training lambda and metric of a bundled model or of CompressAI's zoo
weights (those in torch.hub's cache, where the zoo reads them), recognised by their values."""
from pathlib import Path

import torch

from ..codecs import registry
from ..files.checkpoints import load_checkpoint
from ..files.loading import bundled_architectures, bundled_models, bundled_path


def known_weights(model):
    """(lmbda, metric) of a bundled or zoo model with exactly these weights; None for any other."""
    names = [name for name, cls in registry.image_models().items() if cls is type(model)]
    return _bundled(model, names) or _zoo(model, names)


def _same_weights(model, state_dict):
    """Whether every parameter of the model is in state_dict, with the same shape and values."""
    for name, parameter in model.named_parameters():
        saved = state_dict.get(name)
        if saved is None or saved.shape != parameter.shape or not torch.equal(saved, parameter.detach().cpu()):
            return False
    return True


def _bundled(model, names):
    for architecture in set(names) & set(bundled_architectures()):
        for quality, entry in bundled_models(architecture).items():
            bundled, _ = load_checkpoint(bundled_path(architecture, quality))
            if _same_weights(model, bundled.state_dict()):
                return entry["lmbda"], "mse"
    return None


def _zoo(model, names):
    from compressai.zoo.image import model_urls
    from compressai.zoo.pretrained import load_pretrained
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for architecture in names:
        for metric, urls in model_urls.get(architecture, {}).items():
            for quality, url in urls.items():
                path = cache / url.rsplit("/", 1)[1]
                if path.is_file() and _same_weights(model, load_pretrained(torch.load(path, map_location="cpu"))):
                    return registry.ZOO_LAMBDAS[metric][quality], metric
    return None
