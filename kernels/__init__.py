"""Triton kernels of sgaplus (installed as ``sgaplus.kernels``): score functions and fused rounding."""
