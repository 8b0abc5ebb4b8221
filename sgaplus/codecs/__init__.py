"""Codec adapters: the refiner works with any HyperpriorCodec (see README, "Another codec")."""
from .base import HyperpriorCodec
from .compressai import CompressAIHyperprior

__all__ = ["CompressAIHyperprior", "HyperpriorCodec"]
