"""The op layer: fused ops with their autograd wiring, a PyTorch path and a readable oracle each.

Only torch and triton are used here (no codecs, images or files). One folder per op.
"""
