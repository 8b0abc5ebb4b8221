"""The noise of the op on the PyTorch side: samplers that the chunked path and the reference draw from."""
import torch


def gumbel_like(shape, dtype, device, generator=None):
    """Gumbel(0, 1) noise, u drawn strictly inside (0, 1) as the fused op draws it."""
    u = torch.rand(shape, dtype=torch.float32, device=device, generator=generator).add_(2.0 ** -25)
    return u.log_().neg_().log_().neg_().to(dtype)
