"""Hear your own PyTorch training: send its events to ``sonograd listen``.

One file, standard library only; ``torch`` is imported only when gradients are measured.
Events go as JSON lines (the format of sonograd's ``docs/events.md``) over UDP to
``sonograd listen --udp`` (default 127.0.0.1:9107). Sending never blocks training: a
datagram the socket cannot take at once is counted in ``dropped`` and skipped.

    from sonograd import monitor
    sonifier = monitor(model, port=9107)
    for step, (x, y) in enumerate(loader):
        loss = loss_fn(model(x), y)
        loss.backward()
        sonifier.step(loss=loss, optimizer=optimizer)   # after backward, before step
        optimizer.step()
        optimizer.zero_grad()
    sonifier.close()
"""

import json
import math
import os
import socket
import time

__all__ = [
    "FORMAT_VERSION",
    "GradientSonifier",
    "UdpSender",
    "event_line",
    "layer_of",
    "monitor",
    "pack_datagrams",
]

FORMAT_VERSION = 1
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9107
# listen accepts datagrams up to 32 KiB by default; stay well below.
MAX_DATAGRAM = 8192


def _number(x):
    """A float as JSON allows it: non-finite values as the strings sonograd reads."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def event_line(kind, step, epoch=0, when=None, run=None, rank=None, **fields):
    """One event as a JSON line (no newline). ``value`` fields may be NaN or infinite."""
    event = {
        "v": FORMAT_VERSION,
        "step": int(step),
        "epoch": int(epoch),
        "time": time.time() if when is None else float(when),
        "kind": kind,
    }
    if run is not None:
        event["run"] = str(run)
    if rank is not None:
        event["rank"] = int(rank)
    for key, value in fields.items():
        event[key] = _number(value) if key in ("value", "lr") else value
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def pack_datagrams(lines, max_bytes=MAX_DATAGRAM):
    """Joins lines with newlines into as few datagrams of at most ``max_bytes`` as possible.
    A single line longer than ``max_bytes`` gets a datagram of its own."""
    out, current, size = [], [], 0
    for line in lines:
        data = line.encode("utf-8")
        extra = len(data) + (1 if current else 0)
        if current and size + extra > max_bytes:
            out.append(b"\n".join(current))
            current, size = [], 0
            extra = len(data)
        current.append(data)
        size += extra
    if current:
        out.append(b"\n".join(current))
    return out


def layer_of(param_name):
    """The layer a parameter belongs to: its module path (``fc1.weight`` -> ``fc1``)."""
    head, _, _ = param_name.rpartition(".")
    return head or param_name


class UdpSender:
    """Sends JSON lines to sonograd over UDP without ever blocking."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, max_bytes=MAX_DATAGRAM):
        self.addr = (host, int(port))
        self.max_bytes = max_bytes
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sent = 0
        self.dropped = 0

    def send_lines(self, lines):
        """Sends the lines, packed into datagrams; returns how many datagrams went out."""
        went = 0
        for datagram in pack_datagrams(lines, self.max_bytes):
            try:
                self.sock.sendto(datagram, self.addr)
                self.sent += 1
                went += 1
            except (BlockingIOError, InterruptedError, ConnectionRefusedError):
                self.dropped += 1
            except OSError:
                self.dropped += 1
        return went

    def close(self):
        self.sock.close()


class GradientSonifier:
    """Measures a model's gradients each step and sends them to sonograd.

    Call :meth:`step` after ``loss.backward()`` and before ``optimizer.step()`` /
    ``zero_grad()``. Per-layer gradient norms (a layer is a module that owns parameters) are
    computed on the device in one fused call (``torch._foreach_norm`` where present) and
    fetched in one transfer. Also sent: the total norm, the loss, the learning rate and a
    ``non_finite`` alarm when a layer's gradient holds a NaN or an Inf.
    """

    def __init__(self, model, host=DEFAULT_HOST, port=DEFAULT_PORT, run=None, rank=None,
                 every=1, sender=None):
        self.model = model
        self.run = run
        self.rank = rank if rank is not None else _env_rank()
        self.every = max(1, int(every))
        self.sender = sender or UdpSender(host, port)
        self.steps = 0
        self.epoch = 0
        self._layers = None
        self._started = False

    def _tags(self):
        return {"run": self.run, "rank": self.rank, "epoch": self.epoch}

    def _layout(self):
        names, index, params = [], {}, []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            layer = layer_of(name)
            if layer not in index:
                index[layer] = len(names)
                names.append(layer)
            params.append((index[layer], p))
        self._layers = (names, params)
        return self._layers

    def start(self, **info):
        """Sends ``run_start`` (done by the first :meth:`step` if not called)."""
        names, _ = self._layers or self._layout()
        info.setdefault("model", type(self.model).__name__)
        info["layers"] = names
        self.sender.send_lines([event_line("run_start", self.steps, **self._tags(), **info)])
        self._started = True

    def grad_norms(self):
        """Per-layer gradient L2 norms (list, layer order) and the total norm, as floats."""
        import torch  # only when measuring

        names, params = self._layers or self._layout()
        grads, owners = [], []
        for owner, p in params:
            if p.grad is not None:
                grads.append(p.grad.detach())
                owners.append(owner)
        if not grads:
            return [None] * len(names), 0.0
        if hasattr(torch, "_foreach_norm"):
            norms = torch._foreach_norm(grads)
        else:
            norms = [torch.linalg.vector_norm(g) for g in grads]
        device = grads[0].device
        squares = torch.stack([n.to(device=device, dtype=torch.float32) for n in norms]) ** 2
        per_layer = torch.zeros(len(names), device=device, dtype=torch.float32)
        per_layer.index_add_(0, torch.tensor(owners, device=device), squares)
        has_grad = torch.zeros(len(names), dtype=torch.bool, device=device)
        has_grad[torch.tensor(owners, device=device)] = True
        both = torch.cat([per_layer.sqrt(), per_layer.sum().sqrt().reshape(1)])
        values = both.tolist()  # the one device-to-host transfer
        mask = has_grad.tolist()
        layer_norms = [v if m else None for v, m in zip(values[:-1], mask)]
        return layer_norms, values[-1]

    def step(self, loss=None, optimizer=None, lr=None, step=None):
        """Measures and sends this step's events; returns the number of datagrams sent."""
        if step is not None:
            self.steps = int(step)
        current = self.steps
        self.steps += 1
        if not self._started:
            self.start()
        if current % self.every != 0:
            return 0
        tags = self._tags()
        lines = []
        names, _ = self._layers
        layer_norms, total = self.grad_norms()
        for i, (name, norm) in enumerate(zip(names, layer_norms)):
            if norm is None:
                continue
            lines.append(event_line("grad_norm", current, layer=name, layer_index=i,
                                    value=norm, **tags))
            if not math.isfinite(norm):
                state = "nan" if math.isnan(norm) else "inf"
                lines.append(event_line("non_finite", current, layer=name, layer_index=i,
                                        quantity="grad", state=state, **tags))
        lines.append(event_line("total_norm", current, value=total, **tags))
        if loss is not None:
            value = float(loss.detach().item() if hasattr(loss, "detach") else loss)
            lines.append(event_line("loss", current, value=value, **tags))
            if not math.isfinite(value):
                lines.append(event_line("non_finite", current, quantity="loss",
                                        state="nan" if math.isnan(value) else "inf", **tags))
        if lr is None and optimizer is not None and optimizer.param_groups:
            lr = optimizer.param_groups[0].get("lr")
        if lr is not None:
            lines.append(event_line("lr", current, value=float(lr), **tags))
        return self.sender.send_lines(lines)

    def epoch_end(self):
        """Sends ``epoch_end`` for the epoch that ended and counts the next one."""
        self.sender.send_lines([event_line("epoch_end", max(self.steps - 1, 0), **self._tags())])
        self.epoch += 1

    def eval(self, name, value):
        """Sends an evaluation metric, e.g. ``eval("accuracy", 0.93)``."""
        self.sender.send_lines([event_line("eval", max(self.steps - 1, 0), name=name,
                                           value=value, **self._tags())])

    def close(self, reason="completed"):
        """Sends ``run_end`` and closes the socket."""
        self.sender.send_lines([event_line("run_end", max(self.steps - 1, 0), reason=reason,
                                           coalesced=0, **self._tags())])
        self.sender.close()


def _env_rank():
    rank = os.environ.get("RANK")
    return int(rank) if rank is not None and rank.isdigit() else None


def monitor(model, host=DEFAULT_HOST, port=DEFAULT_PORT, **kwargs):
    """A :class:`GradientSonifier` for ``model`` sending to ``host:port``."""
    return GradientSonifier(model, host=host, port=port, **kwargs)


try:  # The Lightning callback exists only where Lightning does.
    try:
        import lightning.pytorch as _pl
    except ImportError:
        import pytorch_lightning as _pl

    class SonogradCallback(_pl.Callback):
        """Lightning callback: ``Trainer(callbacks=[SonogradCallback(port=9107)])``."""

        def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, **kwargs):
            super().__init__()
            self._args = dict(host=host, port=port, **kwargs)
            self._sonifier = None
            self._loss = None

        def on_fit_start(self, trainer, pl_module):
            self._args.setdefault("rank", trainer.global_rank)
            self._sonifier = GradientSonifier(pl_module, **self._args)

        def on_train_start(self, trainer, pl_module):
            info = {}
            if trainer.optimizers:
                optimizer = trainer.optimizers[0]
                info["optimizer"] = type(optimizer).__name__.lower()
                info["lr"] = float(optimizer.param_groups[0]["lr"])
            if trainer.max_steps and trainer.max_steps > 0:
                info["steps"] = int(trainer.max_steps)
            self._sonifier.start(**info)

        def on_before_backward(self, trainer, pl_module, loss):
            self._loss = loss.detach()

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            self._sonifier.step(loss=self._loss, optimizer=optimizer, step=trainer.global_step)

        def on_train_epoch_end(self, trainer, pl_module):
            self._sonifier.epoch_end()

        def on_fit_end(self, trainer, pl_module):
            self._sonifier.close()

    __all__.append("SonogradCallback")
except ImportError:
    pass
