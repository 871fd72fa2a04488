"""Measuring a model's gradients each step and sending them to ``sonograd listen``, at a cost
the training loop does not notice.

:meth:`GradientSonifier.step` does only what must happen before it returns:

* On the CPU, one call into the native path (``_native.c``, built at install or on first
  use) reads every gradient where it lies, right after the backward that wrote it (it is still
  in this core's cache), and the loss and lr: the sums of squares (float32 blocks summed in
  float64) go into the step's one compact datagram, without the GIL. A native thread of the
  lowest priority (``SCHED_IDLE``) sends it: a send through the loopback costs the caller
  about as much as the read. That thread also watches the socket for controls, so a step
  makes no system call but the one that wakes it. Measured on a 2-core VM, reading here
  costs a step less than handing the read to another core, whose reads of this core's
  freshly written lines slow the next steps more than the read itself.
  ``background=True`` does hand it over: the call takes a copy-on-write snapshot of every
  gradient (``torch._lazy_clone``: no data is copied unless someone later writes to the
  gradient in place, e.g. clipping, and then only that writer pays for the copy) and the
  thread measures and sends. The snapshots are dropped after ``optimizer.step()`` (a step
  hook), so the gradients' memory is free again for the next backward. When no core is free
  for that thread (it has not done a step by the next call), the call does that step itself
  and the next 64 steps within the call, controls included; then it tries the thread again.
* Without a C compiler (or with a custom sender), one fused ``torch._foreach_norm`` within
  the call; with ``background=True``, a TorchScript reduction forked onto torch's inter-op
  thread pool, which the next step sends.
* On a GPU, the same reduction is queued on the current stream and its result copied into
  pinned host memory without blocking, behind a CUDA event; nothing synchronises.

So every step is measured, and nothing, a NaN alarm included, is more than one step late on
the CPU.

Each ``step`` also applies, without blocking, the controls ``listen`` sent back to the socket
it sends from (:mod:`sonograd.controls`): lr, lr scale and momentum changes, pause and
resume, stop (:class:`~sonograd.controls.StopTraining`) and checkpoint (the user's hook).
Nothing else here raises into the training loop: failures are counted in ``errors`` and the
first one is printed.
"""

import atexit
import collections
import math
import os
import socket
import sys
import time
import weakref
from time import monotonic as _monotonic

from . import wire
from .controls import DEFAULT_INTERVAL, Controls, StopTraining, _resolve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9107
#: GPU steps whose results may be in flight at once; a step beyond that is skipped (and
#: counted in ``skipped``) rather than waited for.
MAX_IN_FLIGHT = 64
#: Steps measured on the training thread after a fork was found not to have run in time.
INLINE_STEPS = 16


class UdpSender:
    """Sends datagrams to sonograd over UDP without ever blocking or raising."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, max_bytes=wire.MAX_DATAGRAM):
        self.addr = (host, int(port))
        self.max_bytes = max_bytes
        self.sent = 0
        self.dropped = 0
        self.sock = None
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        except OSError:
            self.sock = None

    def send(self, datagram):
        """Sends one datagram; returns whether it went out."""
        if self.sock is None:
            self.dropped += 1
            return False
        try:
            self.sock.sendto(datagram, self.addr)
            self.sent += 1
            return True
        except (OSError, ValueError):
            # A full socket buffer, no listener (ECONNREFUSED), a closed socket: skip, count.
            self.dropped += 1
            return False

    def send_lines(self, lines):
        """Sends JSON lines, packed into datagrams; returns how many datagrams went out."""
        return sum(self.send(d) for d in wire.pack_datagrams(lines, self.max_bytes))

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def layer_of(param_name):
    """The layer a parameter belongs to: its module path (``fc1.weight`` -> ``fc1``);
    ``torch.compile``'s ``_orig_mod.`` prefix is left out, so compiled and eager models name
    their layers alike."""
    while param_name.startswith("_orig_mod."):
        param_name = param_name[len("_orig_mod."):]
    head, _, _ = param_name.rpartition(".")
    return head or param_name


def _env_world():
    world = os.environ.get("WORLD_SIZE")
    return int(world) if world is not None and world.isdigit() else 1


def _env_rank():
    rank = os.environ.get("RANK")
    return int(rank) if rank is not None and rank.isdigit() else None


def _is_dtensor(t):
    return hasattr(t, "placements") and hasattr(t, "to_local")


def _shard_world(grads):
    """The number of ranks whose shards make the gradients (FSDP2's DTensors), or 0."""
    for g in grads:
        if g is not None and _is_dtensor(g):
            if any(p.is_shard() for p in g.placements):
                try:
                    import torch.distributed as dist

                    if dist.is_initialized():
                        return dist.get_world_size()
                except Exception:  # noqa: BLE001
                    pass
                return g.device_mesh.size()
    return 0


def _local_part(g, rank):
    """What this rank adds to a sharded sum: a DTensor's local shard when sharded; a
    replicated tensor on rank 0 only (``None`` elsewhere)."""
    if not _is_dtensor(g):
        return g if not rank else None
    if any(p.is_shard() for p in g.placements):
        return g.to_local()
    return g.to_local() if not rank else None


def _fused_norms(tensors):
    """Each tensor's L2 norm as a 0-dim tensor, in fused reductions: float64 tensors in
    float64, all others in float32 (a bfloat16 or float16 tensor's own norm would keep only
    its dtype's three digits)."""
    import torch

    groups = {}
    for i, t in enumerate(tensors):
        groups.setdefault(t.dtype == torch.float64, []).append(i)
    out = [None] * len(tensors)
    for wide, where in groups.items():
        norms = torch._foreach_norm([tensors[i] for i in where], 2,
                                    dtype=None if wide else torch.float32)
        for i, n in zip(where, norms):
            out[i] = n
    return out


def _norms_now(tensors):
    """Each tensor's L2 norm as a float (``None`` stays ``None``), in one fused reduction on
    this thread."""
    import torch

    present = [i for i, t in enumerate(tensors) if t is not None]
    values = [None] * len(tensors)
    if not present:
        return values
    chosen = [tensors[i] for i in present]
    norms = _fused_norms(chosen)
    try:
        flat = torch.stack([n.double() for n in norms]).tolist()
    except RuntimeError:  # tensors on several devices
        flat = [n.item() for n in norms]
    for i, v, t in zip(present, flat, chosen):
        values[i] = _exact(v, t)
    return values


def _sum_of_squares(g):
    """A gradient's sum of squares in float64 (those the native path cannot read in place)."""
    g = g.detach()
    if g.is_sparse:
        g = g.coalesce().values()
    return float(g.double().square().sum())


def _exact(norm, t):
    """``norm``, torch's own of ``t``, or ``t``'s norm summed again in float64 where torch's
    may be off: torch sums float32 squares, which overflow while every element is finite (an
    element above about 1.8e19), or fall below float32's normal range and lose their digits
    (elements below about 1.1e-19, a vanishing gradient: at most numel squares under 1.2e-38
    each, so a norm whose square is under numel x 1.2e-31 may be off by more than 1e-7)."""
    n = t.numel()
    if not n:
        return norm
    import torch

    if math.isinf(norm) or (t.dtype != torch.float64 and norm * norm < n * 1.2e-31):
        return torch.linalg.vector_norm(t, dtype=torch.float64).item()
    return norm


def _squares_by_layer(norms, owners, layers):
    """Per-layer sums of squares (``None``: no parameter of the layer has a gradient) and
    their total (``None`` when no layer has one), from per-parameter norms."""
    sums = [None] * layers
    for owner, v in zip(owners, norms):
        if v is None:
            continue
        sums[owner] = v * v if sums[owner] is None else sums[owner] + v * v
    present = [s for s in sums if s is not None]
    return sums, (math.fsum(present) if present else None)


class _Job:
    __slots__ = ("step", "epoch", "when", "loss", "lr", "future", "squares", "gpu")
    # future: (torch future, snapshots, their layers) of a forked CPU reduction

    def __init__(self, step, epoch, when, loss, lr):
        self.step, self.epoch, self.when, self.loss, self.lr = step, epoch, when, loss, lr
        self.future = self.squares = self.gpu = None


class GradientSonifier:
    """Measures a model's gradients each step and sends them to sonograd.

    Call :meth:`step` after ``loss.backward()`` and before ``zero_grad()``; clipping may come
    before or after it (the norms are those at the call). Per-layer gradient L2 norms (a
    layer is a module that owns parameters), the total norm, the loss and the learning rate
    go out as one compact datagram per step, from which ``listen`` also raises the
    ``non_finite`` alarms. Each step is measured within the call and sent by the next call
    at the latest; ``background=True`` hands the measuring to a native thread too (see the
    module docs).

    Controls (``docs/controls.md``): ``optimizer`` and ``scheduler`` are what ``lr``,
    ``lr_scale`` and ``momentum`` act on (or those given to :meth:`step`);
    ``on_checkpoint(step)`` is called for ``checkpoint``; ``controls=False`` reads none;
    ``control_interval`` is the least time between two looks at the socket when the native
    thread does not watch it (seconds; 0: every step, always on this thread, for tests that
    want a control applied at an exact step).
    """

    def __init__(self, model, host=DEFAULT_HOST, port=DEFAULT_PORT, run=None, rank=None,
                 every=1, sender=None, background=False, optimizer=None, scheduler=None,
                 on_checkpoint=None, controls=True, control_interval=DEFAULT_INTERVAL):
        self.model = model
        self.run = run
        self.rank = rank if rank is not None else _env_rank()
        self.every = max(1, int(every))
        self.sender = sender or UdpSender(host, port)
        self.background = background
        self.steps = 0
        self.epoch = 0
        #: Failures inside the client (never raised into the loop; the first is printed).
        self.errors = 0
        #: GPU steps skipped because too many were still in flight.
        self.skipped = 0
        #: CPU steps reduced on the training thread because the fork had not run by the next
        #: step (all cores busy).
        self.stolen = 0
        self._inline_until = 0
        self._layers = None
        self._started = False
        self._closed = False
        self._pending = collections.deque()
        self._shard_world = None  # decided at the first step with a gradient
        self._gpu = False
        self._script = None
        #: The native measurer (``_native.c``) once the first step showed CPU gradients it
        #: can read; ``False`` when it cannot be used.
        self._native = None
        self._native_seen = (0, 0, 0)
        self._hooked = None
        self._hooked_all = weakref.WeakSet()
        self._hook_handles = []
        #: The control state (:class:`~sonograd.controls.Controls`), ``None`` with
        #: ``controls=False``.
        self.controls = None
        if controls:
            addr = getattr(self.sender, "addr", None)
            self.controls = Controls(
                getattr(self.sender, "sock", None),
                accept_from=_resolve(addr) if addr is not None else None,
                optimizer=optimizer, scheduler=scheduler, on_checkpoint=on_checkpoint,
                run=run, rank=self.rank, interval=control_interval,
                world_size=_env_world())

    # ---- controls -----------------------------------------------------------------------

    @property
    def controls_applied(self):
        """Controls applied so far."""
        return self.controls.applied if self.controls is not None else 0

    @property
    def lr_scale(self):
        """The factor the ``lr_scale`` control put on the run's own learning rate."""
        return self.controls.lr_scale if self.controls is not None else 1.0

    @property
    def paused(self):
        """Whether a ``pause`` holds the run (``step()`` waits while it does)."""
        return self.controls.paused if self.controls is not None else False

    @property
    def stopped(self):
        """Whether a ``stop`` control ended the run."""
        return self.controls is not None and self.controls.was_stopped

    def poll_controls(self, optimizer=None, scheduler=None, step=None):
        """Applies the controls waiting (``step()`` does this itself); waits while paused.
        Raises :class:`~sonograd.controls.StopTraining` after ``stop``, nothing else."""
        stop = self._poll(self.steps if step is None else int(step), optimizer, scheduler,
                          now=True)
        if stop is not None:
            raise stop

    def _poll(self, step, optimizer, scheduler, now=False, seen=2):
        """Applies the waiting controls; returns the :class:`StopTraining` to raise once
        the step is measured, or ``None``. ``seen``: what the native thread saw in the
        socket (see :meth:`step`)."""
        c = self.controls
        if c is None or self._closed:
            return None
        if seen == 1:  # (the thread watches only when c.interval > 0)
            now = True
        elif not now and not c.pending and c.interval > 0 and _monotonic() < c._next_look:
            return None  # a clock read, no system call
        c.sock = getattr(self.sender, "sock", None)
        try:
            c.poll(step, optimizer, scheduler, now)
        except StopTraining as stop:
            return stop
        except Exception as e:  # noqa: BLE001
            self._safe("reading controls", _raise, e)
        finally:
            if seen == 1:
                self._safe("reading controls", self._native.rearm)
        return None

    # ---- layout -----------------------------------------------------------------------

    def _layout(self):
        names, index, params, owners = [], {}, [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            layer = layer_of(name)
            if layer not in index:
                index[layer] = len(names)
                names.append(layer)
            params.append(p)
            owners.append(index[layer])
        layout = wire.Layout(names, run=self.run, max_bytes=self.sender.max_bytes)
        self._layers = (names, params, owners, layout)
        return self._layers

    def _safe(self, what, fn, *args):
        """Runs ``fn``; an exception is counted (and the first printed), never raised."""
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the training loop must go on
            self.errors += 1
            if self.errors == 1:
                sys.stderr.write(f"sonograd: {what} failed ({type(e).__name__}: {e}); "
                                 "training goes on, further errors are only counted\n")
            return None

    def _tags(self):
        return {"run": self.run, "rank": self.rank, "epoch": self.epoch}

    # ---- the rare events: JSON lines ----------------------------------------------------

    def start(self, **info):
        """Sends ``run_start`` (done by the first :meth:`step` if not called)."""
        self._safe("start", self._start, info)

    def _start(self, info):
        names = (self._layers or self._layout())[0]
        info.setdefault("model", type(self.model).__name__)
        info["layers"] = names
        self._started = True
        self.sender.send_lines([wire.event_line("run_start", self.steps, **self._tags(), **info)])

    def epoch_end(self):
        """Sends ``epoch_end`` for the epoch that ended and counts the next one."""
        self.flush()
        self._safe("epoch_end", self.sender.send_lines,
                   [wire.event_line("epoch_end", max(self.steps - 1, 0), **self._tags())])
        self.epoch += 1

    def eval(self, name, value):
        """Sends an evaluation metric, e.g. ``eval("accuracy", 0.93)``."""
        self.flush()
        self._safe("eval", lambda: self.sender.send_lines([wire.event_line(
            "eval", max(self.steps - 1, 0), name=name, value=float(value), **self._tags())]))

    def close(self, reason=None):
        """Sends what is pending and ``run_end``, and closes the socket. Safe to call twice.
        The reason is ``stopped`` after a ``stop`` control, else ``completed``."""
        if self._closed:
            return
        if reason is None:
            reason = "stopped" if self.stopped else "completed"
        self.flush()
        self._safe("close", self.sender.send_lines, [wire.event_line(
            "run_end", max(self.steps - 1, 0), reason=reason, coalesced=0, **self._tags())])
        self._closed = True
        for handle in self._hook_handles:
            self._safe("close", handle.remove)
        self._hook_handles = []
        if self._native:
            self._safe("close", self._native.close)
            self._native_counters()
            _open_sonifiers.discard(self)
        self.sender.close()

    def flush(self):
        """Sends every measured step, waiting for those still being reduced (on a GPU, for
        their copies to arrive)."""
        if self._native:
            self._safe("flush", self._native.flush)
            self._native_counters()
        self._safe("flush", self._drain, True)

    # ---- measuring ----------------------------------------------------------------------

    def grad_norms(self):
        """Per-layer gradient L2 norms (list, layer order; ``None``: no gradient) and the total
        norm (``None``: no gradient at all), computed now on this thread."""
        names, params, owners, _ = self._layers or self._layout()
        sums, total = _squares_by_layer(_norms_now([p.grad for p in params]), owners,
                                        len(names))
        return ([None if s is None else math.sqrt(s) for s in sums],
                None if total is None else math.sqrt(total))

    def step(self, loss=None, optimizer=None, lr=None, step=None, scheduler=None):
        """Applies the controls that arrived (waiting while paused), measures this step and
        sends the previous one. Raises only :class:`~sonograd.controls.StopTraining`, after
        a ``stop`` control (once this step is measured)."""
        if step is not None:
            self.steps = int(step)
        current = self.steps
        self.steps = current + 1
        native = self._native
        stop = None
        c = self.controls
        if c is not None:
            # The native thread watches the socket: 0 nothing came, 1 something did, 2 it
            # cannot watch (not started, starved, controls read every step): look as without.
            seen = native.waiting() if native else 2
            if seen or c.pending:
                stop = self._poll(current, optimizer, scheduler, seen=seen)
        if not (self._closed or current % self.every):
            if native:  # the common case on a CPU: one call, the rest on the native thread
                try:
                    if lr is None and optimizer is not None:
                        groups = optimizer.param_groups
                        lr = groups[0].get("lr") if groups else None
                    native.submit(current, self.epoch, loss, lr, not self.background)
                    if self.background and optimizer is not None \
                            and optimizer is not self._hooked:
                        self._hook(optimizer)
                except Exception as e:  # noqa: BLE001
                    self._safe("step", _raise, e)
            else:
                self._step(current, loss, optimizer, lr)
        if stop is not None:
            raise stop

    def _step(self, current, loss, optimizer, lr):
        try:
            if not self._started:
                self._start({})
            if lr is None and optimizer is not None:
                groups = optimizer.param_groups
                lr = groups[0].get("lr") if groups else None
            self._measure(current, loss, lr)
            self._drain(False)
        except Exception as e:  # noqa: BLE001
            self._safe("step", _raise, e)

    def measure_grads(self, step, grads, loss=None, lr=None, optimizer=None, scheduler=None):
        """Like :meth:`step` for gradients already snapshotted (one per parameter, in
        ``model.named_parameters()`` order of those requiring grad; ``None``: no gradient).
        With an ``optimizer`` and no ``lr``, the lr sent is read after the controls applied."""
        try:
            current = int(step)
        except (TypeError, ValueError) as e:
            self._safe("step", _raise, e)
            return
        stop = self._poll(current, optimizer, scheduler)
        if not self._closed:
            self._measure_grads(current, grads, loss, lr, optimizer)
        if stop is not None:
            raise stop

    def _measure_grads(self, current, grads, loss, lr, optimizer):
        try:
            if not self._started:
                self._start({})
            if lr is None and optimizer is not None:
                groups = optimizer.param_groups
                lr = groups[0].get("lr") if groups else None
            self.steps = current + 1
            self._measure(current, loss, lr, grads=grads)
            self._drain(False)
        except Exception as e:  # noqa: BLE001
            self._safe("step", _raise, e)

    def _measure(self, current, loss, lr, grads=None):
        names, params, owners, _ = self._layers or self._layout()
        job = _Job(current, self.epoch, time.time(), loss, lr)
        if self._shard_world is None:
            probe = grads if grads is not None else [p.grad for p in params]
            first = next((g for g in probe if g is not None), None)
            if first is None:
                job.squares = ([None] * len(names), None)
                self._pending.append(job)
                return
            self._shard_world = _shard_world(probe)
            self._gpu = first.device.type == "cuda"
            if grads is None and first.device.type == "cpu" and not self._shard_world:
                self._native = self._make_native(params, owners, len(names))
                if self._native:
                    self._drain(True)
                    opt = self.controls.optimizer if self.controls is not None else None
                    if opt is not None and self.background:
                        self._hook(opt)
                    self._native.submit(current, self.epoch, loss, lr, not self.background)
                    return
        if self._gpu:
            grads = grads if grads is not None else [p.grad for p in params]
            self._gpu_snapshot(job, grads, owners, len(names))
        elif self.background and current >= self._inline_until and self._load_script():
            if grads is None and not self._shard_world:
                job.future = self._script.start([p.grad for p in params], owners, len(names))
            else:
                job.future = self._launch_python(grads, params, owners, len(names))
        else:
            grads = grads if grads is not None else [p.grad for p in params]
            if self._shard_world:
                grads = [None if g is None else _local_part(g, self.rank) for g in grads]
            job.squares = _squares_by_layer(_norms_now(grads), owners, len(names))
        if loss is not None and hasattr(loss, "detach"):
            job.loss = loss.detach()
        self._pending.append(job)

    def _make_native(self, params, owners, layers):
        """The native measurer for these parameters, or ``False`` (no compiler, a custom
        sender...): the steps are then measured in Python."""
        sock = getattr(self.sender, "sock", None)
        if not isinstance(self.sender, UdpSender) or sock is None:
            return False
        try:
            import torch

            from ._build import native

            host, port = self.sender.addr
            family = sock.family
            ip = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)[0][4][0]
            layout = self._layers[3]
            measurer = native().Measurer(
                params, owners, layers,
                layout.templates(rank=self.rank), sock.fileno(), int(family),
                socket.inet_pton(family, ip), int(port), torch._lazy_clone, _sum_of_squares,
                (torch.float32, torch.float64, torch.bfloat16), torch.Tensor)
            c = self.controls
            measurer.watch(c is not None and c.interval > 0)
        except Exception as e:  # noqa: BLE001
            if not os.environ.get("SONOGRAD_NO_NATIVE"):
                sys.stderr.write(f"sonograd: no native measuring thread ({type(e).__name__}: "
                                 f"{e}); measuring in Python\n")
            return False
        _open_sonifiers.add(self)
        return measurer

    def _hook(self, optimizer):
        """After each ``optimizer.step()``, drops the snapshots the native thread has
        measured, so that the gradients' memory is free before the next backward (and a
        ``zero_grad(set_to_none=False)`` does not copy them)."""
        self._hooked = optimizer
        if optimizer in self._hooked_all:
            return
        register = getattr(optimizer, "register_step_post_hook", None)
        if register is None:
            return
        release = self._native.release
        self._hook_handles.append(register(lambda *_: release()))
        self._hooked_all.add(optimizer)

    def _native_counters(self):
        """Adds what the native thread sent since last asked to the sender's counters."""
        if self._native:
            sent, dropped, stolen = self._native.counters()
            s0, d0, t0 = self._native_seen
            self.sender.sent += sent - s0
            self.sender.dropped += dropped - d0
            self.stolen += stolen - t0
            self._native_seen = (sent, dropped, stolen)

    def _load_script(self):
        """The TorchScript half, compiled once; without TorchScript (a torch that dropped
        it), steps are measured on the calling thread instead."""
        if self._script is None:
            try:
                from . import _script

                self._script = _script
            except Exception as e:  # noqa: BLE001
                self._script = False
                sys.stderr.write(f"sonograd: no TorchScript ({type(e).__name__}: {e}); "
                                 "measuring on the training thread\n")
        return bool(self._script)

    def _launch_python(self, grads, params, owners, layers):
        import torch

        if grads is None:
            grads = [p.grad for p in params]
        ts, own = [], []
        for g, o in zip(grads, owners):
            if g is None:
                continue
            if self._shard_world:
                g = _local_part(g, self.rank)
                if g is None:
                    g = torch.zeros(0, device=g.device if g is not None else "cpu")
            ts.append(torch._lazy_clone(g))
            own.append(o)
        return self._script.launch(ts, own, layers)

    def _gpu_snapshot(self, job, grads, owners, layers):
        import torch

        live = sum(1 for j in self._pending if j.gpu is not None)
        if live >= MAX_IN_FLIGHT:
            self.skipped += 1
            raise _Skip()
        present = [i for i, g in enumerate(grads) if g is not None]
        tensors = []
        for i in present:
            g = grads[i]
            if self._shard_world:
                local = _local_part(g, self.rank)
                g = local if local is not None else torch.zeros(0, device=g.device)
            tensors.append(g)
        norms = _fused_norms(tensors)
        parts = [torch.stack([n.float() for n in norms])]
        has_loss = job.loss is not None and hasattr(job.loss, "detach")
        has_lr = hasattr(job.lr, "detach")
        if has_loss:
            parts.append(job.loss.detach().float().reshape(1).to(parts[0].device))
        if has_lr:
            parts.append(job.lr.detach().float().reshape(1).to(parts[0].device))
        device_values = torch.cat(parts) if len(parts) > 1 else parts[0]
        host = torch.empty(device_values.numel(), dtype=torch.float32, pin_memory=True)
        host.copy_(device_values, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        job.gpu = (event, host, [owners[i] for i in present], has_loss, has_lr)
        job.loss = None if has_loss else job.loss

    # ---- sending ------------------------------------------------------------------------

    def _drain(self, wait):
        """Sends measured steps in order. CPU: every step but the newest (all when ``wait``),
        reducing here any whose fork has not run. GPU: those whose copy has arrived (all
        when ``wait``), polling only."""
        while self._pending:
            job = self._pending[0]
            last = len(self._pending) == 1
            if job.gpu is not None:
                if not job.gpu[0].query():
                    if not wait:
                        return
                    while not job.gpu[0].query():  # polling: never a synchronising call
                        time.sleep(0.0002)
            elif job.future is not None and last and not wait:
                return
            elif job.future is not None and job.future[0] is not None \
                    and not job.future[0].done():
                # The fork has not run yet (every core busy): reduce the snapshots here
                # rather than wait, so this step is sent now and never costs more than
                # measuring on this thread would.
                fut, ts, own = job.future
                job.future = (None, ts, own)
                self.stolen += 1
                # The pool is starved: measure the next steps here, so forks do not pile up
                # (each holds its snapshot), then try the pool again.
                self._inline_until = job.step + 1 + INLINE_STEPS
            self._pending.popleft()
            self._safe("sending a step", self._send, job)

    def _send(self, job):
        names, _, owners, layout = self._layers
        layers = len(names)
        if job.gpu is not None:
            _, host, present_owners, has_loss, has_lr = job.gpu
            flat = host.tolist()
            n = len(present_owners)
            if has_loss:
                job.loss = flat[n]
            if has_lr:
                job.lr = flat[n + has_loss]
            sums, total = _squares_by_layer(flat[:n], present_owners, layers)
        elif job.future is not None:
            fut, ts, own = job.future
            norms = (fut.wait() if fut is not None else self._script.reduce(ts, own, layers))
            norms = norms.tolist()
            job.future = None
            norms = [_exact(v, t) for v, t in zip(norms, ts)]
            sums, total = _squares_by_layer(norms, own, layers)
        else:
            sums, total = job.squares
        if not self._shard_world:
            sums = [None if s is None or s < 0 else math.sqrt(s) for s in sums]
            total = None if total is None else math.sqrt(total)
        loss = job.loss
        if loss is not None:
            loss = float(loss.item() if hasattr(loss, "item") else loss)
        lr = job.lr
        if lr is not None:
            lr = float(lr.item() if hasattr(lr, "item") else lr)
        for d in layout.pack(job.step, sums, epoch=job.epoch, when=job.when, rank=self.rank,
                             loss=loss, lr=lr, total=total,
                             shard_world=self._shard_world or 0):
            self.sender.send(d)


#: Sonifiers with a native measurer not closed yet: their pending steps go out at exit, and
#: the native thread stops before the interpreter does.
_open_sonifiers = weakref.WeakSet()


@atexit.register
def _close_measurers():
    for s in list(_open_sonifiers):
        try:
            s._native.close()
        except Exception:  # noqa: BLE001
            pass


_orphans = []


def _forget_measurers():
    """In a forked child (a DataLoader worker...): the native thread did not come along, so
    its measurers are neither used nor freed (freeing one joins that thread)."""
    for s in list(_open_sonifiers):
        _orphans.append(s._native)
        s._native = False
    _open_sonifiers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_measurers)


class _Skip(Exception):
    pass


def _raise(e):
    if not isinstance(e, _Skip):
        raise e
