"""Codecs the refiner works with: the HyperpriorCodec interface, adapters, and their registry
(see README, "Another codec")."""
from . import registry
from .base import HyperpriorCodec
from .compressai import CompressAIHyperprior
from .context import CompressAIContext
from .factorized import CompressAIFactorized

registry.register("mbt2018-mean", CompressAIHyperprior)
registry.register("bmshj2018-hyperprior", CompressAIHyperprior)
registry.register("mbt2018", CompressAIContext)
registry.register("cheng2020-anchor", CompressAIContext)
registry.register("cheng2020-attn", CompressAIContext)
registry.register("bmshj2018-factorized", CompressAIFactorized)
registry.register("bmshj2018-factorized-relu", CompressAIFactorized)

__all__ = ["CompressAIContext", "CompressAIFactorized", "CompressAIHyperprior", "HyperpriorCodec", "registry"]
