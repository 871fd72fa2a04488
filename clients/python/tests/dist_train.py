"""Run by torchrun from test_distributed.py: a small MLP trained with DDP or FSDP2
(`fully_shard`) on gloo, monitored by sonograd; rank 0 writes the float64 reference norms
of the full (averaged) gradients, gathered from all ranks, and the mean loss per step."""

import argparse
import json
import math
import os
import sys

import torch
import torch.distributed as dist

import sonograd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["ddp", "fsdp"], required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(24, 33), torch.nn.ReLU(),
                                torch.nn.Linear(33, 16), torch.nn.ReLU(),
                                torch.nn.Linear(16, 5))
    if args.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        trained = model
    sonifier = sonograd.monitor(model, port=args.port, run=args.mode)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)
    refs = []
    for step in range(args.steps):
        x = torch.randn(8, 24, generator=gen)
        y = torch.randint(0, 5, (8,), generator=gen)
        loss = torch.nn.functional.cross_entropy(trained(x), y)
        loss.backward()
        layers = {}
        for name, p in model.named_parameters():
            g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad
            layer = name.rpartition(".")[0]
            layers[layer] = layers.get(layer, 0.0) + g.double().pow(2).sum().item()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        refs.append({"layers": {k: math.sqrt(v) for k, v in layers.items()},
                     "total": math.sqrt(math.fsum(layers.values())),
                     "loss": mean_loss.item() / world, "local_loss": loss.item()})
        sonifier.step(loss=loss, optimizer=opt)
        opt.step()
        opt.zero_grad()
    sonifier.close()
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"refs": refs, "sharded": sonifier._shard_world,
                       "errors": sonifier.errors}, f)
    dist.barrier()
    dist.destroy_process_group()
    sys.exit(1 if sonifier.errors else 0)


if __name__ == "__main__":
    main()
