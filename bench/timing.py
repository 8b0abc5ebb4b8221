"""Timing a function on a device: wall-clock seconds with the device synchronized around each run."""
import statistics
import time

import torch


def synchronized(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(function, device, repeats=1):
    """(median seconds, last result) of function() over `repeats` runs."""
    times, result = [], None
    for _ in range(repeats):
        synchronized(device)
        start = time.perf_counter()
        result = function()
        synchronized(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
