"""One DDP step on two gloo processes; each rank saves its gradients for the test to compare."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from tests.train.worker import job_and_config
from usbrain.train.distributed import close_world, init_world
from usbrain.train.loop import batch_indices, train


def main(out: Path) -> None:
    world = init_world("cpu")
    job, config = job_and_config()
    ddp = DistributedDataParallel(job.objective)
    indices = batch_indices(job.num_items, config.train_diffusion.batch_size, 0, world, seed=0)
    generator = torch.Generator().manual_seed(world.rank)
    losses = ddp(**job.inputs(indices, generator, world.device))
    losses["loss"].backward()
    grads = {n: p.grad.clone() for n, p in job.model.named_parameters() if p.grad is not None}
    torch.save(
        {"indices": indices, "loss": float(losses["loss"]), "grads": grads},
        out / f"rank{world.rank}.pt",
    )
    # Then the real loop for a few steps, in the same process group: only rank 0 writes.
    job, config = job_and_config("train_diffusion.steps=3")
    train(job, config, config.train_diffusion, out / "run", world, progress=False)
    close_world(world)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
