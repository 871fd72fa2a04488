"""The TorchScript half of the CPU path (imported only when measuring): a snapshot of the
gradients taken on the training thread, and the reduction forked onto torch's inter-op
thread pool, where it runs without the GIL."""

import warnings
from typing import List, Optional, Tuple

import torch


def _reduce(ts: List[torch.Tensor], owners: List[int], layers: int) -> torch.Tensor:
    """Each tensor's L2 norm (one fused reduction of the float32 and float64 ones; the others,
    whose own norm would keep only their dtype's few digits, in float64), as float64; the
    caller sums them per layer."""
    out = torch.zeros([len(ts)], dtype=torch.float64)
    fused: List[torch.Tensor] = []
    where: List[int] = []
    for i in range(len(ts)):
        if ts[i].dtype == torch.float32 or ts[i].dtype == torch.float64:
            fused.append(ts[i])
            where.append(i)
        else:
            out[i] = torch.linalg.vector_norm(ts[i], dtype=torch.float64)
    if len(fused) > 0:
        norms = torch._foreach_norm(fused)
        for k in range(len(where)):
            out[where[k]] = norms[k].double()
    return out


def _launch(ts: List[torch.Tensor], owners: List[int], layers: int
            ) -> Tuple[torch.jit.Future[torch.Tensor], List[torch.Tensor], List[int]]:
    return torch.jit.fork(_reduce, ts, owners, layers), ts, owners


def _start(grads: List[Optional[torch.Tensor]], owners: List[int], layers: int
           ) -> Tuple[torch.jit.Future[torch.Tensor], List[torch.Tensor], List[int]]:
    ts: List[torch.Tensor] = []
    own: List[int] = []
    for i in range(len(grads)):
        g = grads[i]
        if g is not None:
            ts.append(torch._lazy_clone(g))
            own.append(owners[i])
    return torch.jit.fork(_reduce, ts, own, layers), ts, own


with warnings.catch_warnings():
    # torch.jit.script is deprecated in favour of torch.compile, which cannot fork; a user's
    # `-W error` must not turn that notice into a failure here.
    warnings.simplefilter("ignore")
    #: The reduction, run on the calling thread.
    reduce = torch.jit.script(_reduce)
    #: Forks the reduction of already-snapshotted tensors; returns its future, the tensors
    #: and their layers (to reduce on the calling thread should the fork not have run yet).
    launch = torch.jit.script(_launch)
    #: Snapshots the gradients (``None``: none) and forks their reduction; returns as launch.
    start = torch.jit.script(_start)
