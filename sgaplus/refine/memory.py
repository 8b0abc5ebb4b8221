"""How much memory a relaxed step needs, known before refining: from two small probes of the codec, the bytes the
step's autograd graph keeps grow linearly with the pixels of the batch; the step's peak is at most twice that plus
a fixed allowance (the estimate is 1.5 to 1.9 times the peak torch's allocator reaches at 1.6 megapixels;
tests/test_memory.py bounds it). With the synthesis checkpointed (its stages recomputed one at a time in the
backward), the graph keeps less, and the recomputation of a stage adds up to four times the largest stage's input
and output (the estimate is then 1.7 times the peak). Where a batch would not fit the memory free on its device, it
is refined in smaller batches, then with the synthesis checkpointed, or refused with one line saying what fits. On a
CPU every batch is one image: oneDNN's convolutions, PyTorch's CPU default, round an image differently in batches of
other sizes, which would make an image's file depend on what it is refined with (docs/cli.md, "Batches")."""
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError

PROBE_SIDES = (128, 256)  # the probes' square image sides (padded to the codec's multiple)
PEAK_PER_SAVED_BYTE = 2.0  # peak of a step / bytes its graph keeps (see tests/test_memory.py)
PEAK_PER_STAGE_BYTE = 4.0  # checkpointed: peak added / the largest synthesis stage's input + output bytes
FIXED_BYTES = 64 << 20  # the part of the peak that does not grow with the image (buffers, workspace)
USABLE_SHARE = 0.9  # of the free memory, what a refinement may plan to use
ONE_IMAGE_DEVICES = ("cpu",)  # device types on which every image refines alone, whatever the batch size asked for


@dataclass(frozen=True)
class StepMemory:
    """The bytes a relaxed step's graph keeps, fixed + per_pixel * pixels of the batch, and with the synthesis
    checkpointed, the largest stage's input and output bytes, stage_per_pixel * pixels (0 otherwise)."""
    fixed: float
    per_pixel: float
    stage_per_pixel: float = 0.0

    def growth(self):
        """Peak bytes per pixel of the batch."""
        return PEAK_PER_SAVED_BYTE * self.per_pixel + PEAK_PER_STAGE_BYTE * self.stage_per_pixel

    def peak(self, pixels):
        """The step's estimated peak, in bytes, for a batch of `pixels` pixels in all."""
        return PEAK_PER_SAVED_BYTE * self.fixed + FIXED_BYTES + self.growth() * pixels


def saved_bytes(refiner, side, device):
    """Bytes the relaxed loss keeps for its backward on one blank side x side image (each storage once)."""
    storages = {}

    def keep(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    batch = refiner._start(torch.zeros(1, 3, side, side, device=device))  # the latents a refinement starts from
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        refiner.relaxed_loss(batch.x, batch.y, batch.z, 0.5)
    return sum(storages.values())


def largest_stage_bytes(refiner, side, device):
    """The largest input + output bytes of one synthesis stage on one side x side image (no gradients)."""
    codec = refiner.codec
    with torch.no_grad():
        value = codec.analysis(torch.zeros(1, 3, side, side, device=device))
        largest = 0
        for stage in codec.synthesis_stages():
            output = stage(value)
            largest = max(largest, value.nbytes + output.nbytes)
            value = output
    return largest


def probe(refiner, device):
    """The StepMemory of a refiner's relaxed step, fitted to probes at PROBE_SIDES (each at least the smallest side
    its distortion is defined on)."""
    multiple = refiner.codec.multiple
    sides = [-(-max(side, refiner.distortion.min_side) // multiple) * multiple for side in PROBE_SIDES]
    small, large = (saved_bytes(refiner, side, device) for side in sides)
    per_pixel = max(large - small, 0) / (sides[1] ** 2 - sides[0] ** 2)
    stage = largest_stage_bytes(refiner, sides[1], device) / sides[1] ** 2 if refiner.checkpoint_synthesis else 0.0
    return StepMemory(max(small - per_pixel * sides[0] ** 2, 0.0), per_pixel, stage)


def free_bytes(device):
    """The memory free on the device (a CUDA device's, or the machine's available memory); None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def gigabytes(size):
    return f"{size / 2 ** 30:.1f} GB"


def plan(refiner, sizes, batch_size, device, free=None):
    """The largest batch (at most batch_size; one image on ONE_IMAGE_DEVICES) of each image size that fits the free
    memory: {size: batch}. Turns on the refiner's checkpoint_synthesis when the largest image fits only with it;
    UsageError (one line) when an image does not fit at all."""
    if torch.device(device).type in ONE_IMAGE_DEVICES:
        batch_size = 1
    free = free_bytes(device) if free is None else free
    if free is None or not sizes:
        return {size: batch_size for size in sizes}
    budget = USABLE_SHARE * free
    memory = probe(refiner, device)
    largest = padded_pixels(refiner, max(sizes, key=lambda size: size[0] * size[1]))
    if memory.peak(largest) > budget and not refiner.checkpoint_synthesis:
        refiner.checkpoint_synthesis = True
        checkpointed = probe(refiner, device)
        if checkpointed.peak(largest) < memory.peak(largest):
            memory = checkpointed
        else:  # recomputing costs time and saves nothing here
            refiner.checkpoint_synthesis = False
    batches = {}
    for size in sizes:
        pixels = padded_pixels(refiner, size)
        fitting = int((budget - memory.peak(0)) // (memory.growth() * pixels))
        if fitting < 1:
            most = max(budget - memory.peak(0), 0) / memory.growth()
            raise UsageError(f"a {size[1]}x{size[0]} image needs about {gigabytes(memory.peak(pixels))} to refine "
                             f"with this model ({gigabytes(free)} free on {device}): images up to about "
                             f"{most / 1e6:.1f} megapixels fit; crop or downscale it, or use a device with more "
                             f"memory")
        batches[size] = min(batch_size, fitting)
    return batches


def padded_pixels(refiner, size):
    multiple = refiner.codec.multiple
    return math.prod(-(-side // multiple) * multiple for side in size)
