"""The machine a measurement ran on, named the same way in every report: the GPU's name, or the CPU's model and
the number of threads torch uses; and that name as a file name (letters, digits and dashes)."""
import platform
import re
from pathlib import Path

import torch


def device_name(device="cpu"):
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else []:
        if line.startswith("model name"):
            return f"CPU {line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
