"""The TorchScript half of the CPU path (imported only when measuring): a snapshot of the
gradients taken on the training thread, and the reduction forked onto torch's inter-op
thread pool, where it runs without the GIL."""

import warnings
from typing import List, Optional, Tuple

import torch


def _reduce(ts: List[torch.Tensor], owners: List[int], layers: int) -> torch.Tensor:
    """Per-layer sums of squared gradient norms (-1: no gradient), then the total."""
    out = torch.full([layers + 1], -1.0, dtype=torch.float64)
    if len(ts) == 0:
        return out
    norms = torch._foreach_norm(ts)
    sq = torch.stack([n.double() for n in norms]).square()
    if not bool(torch.isfinite(sq).all()):
        for i in range(len(ts)):
            if bool(torch.isinf(sq[i])):
                # An f32 sum of squares can overflow while every element is finite.
                sq[i] = ts[i].double().square().sum()
    idx = torch.tensor(owners, dtype=torch.long)
    sums = torch.zeros([layers], dtype=torch.float64).index_add_(0, idx, sq)
    counts = torch.zeros([layers], dtype=torch.float64).index_add_(0, idx, torch.ones_like(sq))
    out[:layers] = torch.where(counts > 0, sums, torch.full_like(sums, -1.0))
    out[layers] = sq.sum()
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
