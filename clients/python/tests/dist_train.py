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
    ap.add_argument("--mode", choices=["ddp", "fsdp", "ddp-stop"], required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    dist.init_process_group("gloo")
    if args.mode == "ddp-stop":
        return stop_apart(args)
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


def stop_apart(args):
    """A `stop` that reaches the ranks two steps apart: each rank plays its own listener (a
    socket bound here that its sonifier sends to) and sends the stop, stamped with step 10 as
    `listen` stamps it, to its sonifier at step 10 (rank 0) or 12 (rank 1). Every rank must
    stop at the same step; a rank that stopped early would leave the other waiting in DDP's
    all-reduce. Each rank writes the step it stopped at to OUT.RANK."""
    import socket

    from torch.nn.parallel import DistributedDataParallel

    rank = dist.get_rank()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(24, 33), torch.nn.ReLU(), torch.nn.Linear(33, 5))
    trained = DistributedDataParallel(model)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sonifier = sonograd.monitor(model, port=sink.getsockname()[1], run="stop",
                                control_interval=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)
    stop = json.dumps({"v": 1, "step": 10, "kind": "control", "control": "halt",
                       "source": "osc:/halt", "target": "stop", "value": 1.0}).encode()
    stopped = None
    for step in range(60):
        if step == (10 if rank == 0 else 12):
            sink.sendto(stop, sonifier.sender.sock.getsockname())
        x = torch.randn(8, 24, generator=gen)
        y = torch.randint(0, 5, (8,), generator=gen)
        torch.nn.functional.cross_entropy(trained(x), y).backward()
        try:
            sonifier.step(optimizer=opt)
        except sonograd.StopTraining as e:
            stopped = e.step
            break
        opt.step()
        opt.zero_grad()
    sonifier.close()
    with open(f"{args.out}.{rank}", "w") as f:
        json.dump({"stopped": stopped}, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
