"""Codecs the refiner works with: the HyperpriorCodec interface, adapters, and their registry
(see README, "Another codec")."""
from . import registry
from .base import HyperpriorCodec
from .compressai import CompressAIHyperprior

registry.register("mbt2018-mean", CompressAIHyperprior)
registry.register("bmshj2018-hyperprior", CompressAIHyperprior)

__all__ = ["CompressAIHyperprior", "HyperpriorCodec", "registry"]
