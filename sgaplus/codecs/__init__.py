"""Codecs the refiner works with: the HyperpriorCodec interface, the adapters of CompressAI's image models, and
the registry that picks an adapter by model class (docs/codecs.md, "Another codec")."""
from . import registry
from .base import HyperpriorCodec
from .compressai import CompressAIHyperprior
from .context import CompressAIContext
from .factorized import CompressAIFactorized
from .latent_codecs import CompressAILatentCodecs
from .vbr import CompressAIVbr, CompressAIVbrContext

for _adapter in (CompressAIVbrContext, CompressAIVbr, CompressAIContext, CompressAIHyperprior, CompressAIFactorized,
                 CompressAILatentCodecs):
    registry.register(_adapter)

__all__ = ["CompressAIContext", "CompressAIFactorized", "CompressAIHyperprior", "CompressAILatentCodecs",
           "CompressAIVbr", "CompressAIVbrContext", "HyperpriorCodec", "registry"]
