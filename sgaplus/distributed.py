"""Sharding refinement work across processes started by torchrun (gloo on CPU, NCCL on GPUs): each rank takes every
world-th piece of a list every rank computes alike."""
import os

import torch
import torch.distributed as dist


def setup(device):
    """(rank, world size, device of this rank); starts the process group when torchrun launched several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    return dist.get_rank(), world, device


def share(work, rank, world):
    """This rank's pieces of the work: every world-th, from its rank on."""
    return work[rank::world]


def smallest(values, world):
    """{key: the smallest of the ranks' values}, so that every rank decides alike (each rank calls it with the same
    keys; a batch size each rank planned for its own device's memory, say)."""
    if world == 1:
        return values
    gathered = [None] * world
    dist.all_gather_object(gathered, values)
    return {key: min(part[key] for part in gathered) for key in values}


def barrier(world):
    if world > 1:
        dist.barrier()


def gather(items, world):
    """All ranks' lists concatenated on rank 0 (None on the others)."""
    if world == 1:
        return items
    gathered = [None] * world if dist.get_rank() == 0 else None
    dist.gather_object(items, gathered, dst=0)
    return None if gathered is None else [item for part in gathered for item in part]


def finish(world):
    if world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
