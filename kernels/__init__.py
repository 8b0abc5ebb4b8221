"""Every Triton kernel of sgaplus, installed as ``sgaplus.kernels`` (setup.py maps this folder there).

rounding.py: the SGA+ rounding kernels (two and three classes, forward and backward) and their launchers;
scores.py: the per-method score functions and fast transcendentals they inline. The op layer
(sgaplus/ops/) imports these launchers; constants.py holds every constant of the math (plain Python), which the
op layer re-exports. The kernels import only torch, triton and each other.
"""
