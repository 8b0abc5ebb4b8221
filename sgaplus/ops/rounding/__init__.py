"""The SGA+ rounding op: config.py (what to compute), op.py (autograd wiring and dispatch), chunked.py (PyTorch
path), noise.py (samplers), reference.py (the readable oracle). Its Triton kernels are sgaplus.kernels.rounding
(the repository's kernels/)."""
from .config import METHODS, RoundingConfig
from .op import sga_round

__all__ = ["METHODS", "RoundingConfig", "sga_round"]
