"""Controls from ``sonograd listen``: a person turned a knob, and the run obeys at its next step
(sonograd's ``docs/controls.md``, "Controls for a Python run").

``listen`` sends each control that targets training back to the address the client's
datagrams came from, one JSON line per datagram::

    {"v":1,"step":120,"epoch":0,"time":...,"kind":"control","control":"lr knob",
     "source":"midi:cc:1:21","target":"lr_scale","value":0.5}

:class:`Controls` reads them without blocking and applies them to the optimizer: ``lr``, ``lr_scale``, ``momentum``; ``pause`` and
``resume``; ``stop`` (:class:`StopTraining`); ``checkpoint`` (the user's hook). Standard
library only; nothing here raises into the training loop but :class:`StopTraining`.

What a step pays: a system call on a socket is cheap in a tight loop (~1 us) but not between
a training step's kernels, whose work leaves the kernel's paths cold: ``recv`` failing with
``EAGAIN`` measured ~10 us there, ``poll(0)`` ~3 us. So the socket is looked at (with
``poll(0)``, then read only when something waits) at most once per
:data:`DEFAULT_INTERVAL`; the steps in between pay a clock read. A control thereby takes
effect at most one step plus that interval after it arrives. On the CPU the client's native
thread watches the socket instead (``_native.c``), and :class:`Controls` reads it only when
that thread saw something come.
"""

import json
import math
import select
import socket
import sys
import time

#: The targets a Python run applies.
TARGETS = ("lr", "lr_scale", "momentum", "pause", "resume", "stop", "checkpoint")
#: Least time between two looks at the socket (seconds); 0: every step.
DEFAULT_INTERVAL = 0.002
#: How often a paused ``step()`` wakes up to look for Ctrl-C while no control arrives.
PAUSE_POLL = 0.1
#: Datagrams read per poll at most, so a flood cannot hold the training thread.
MAX_PER_POLL = 64
#: In a distributed run, a control stamped by ``listen`` with step S applies at step
#: S + this on every rank, so that all ranks act at the same step (a ``stop`` seen by one rank
#: a step before another would leave the later one waiting in a collective).
DISTRIBUTED_LEAD_STEPS = 4
_RECV_BYTES = 65536
_HAS_POLL = hasattr(select, "poll")


class StopTraining(Exception):
    """Raised by :meth:`GradientSonifier.step` when a person sent ``stop``: end the loop
    cleanly (``close()`` then sends ``run_end`` with reason ``stopped``). The Lightning and
    Transformers callbacks turn it into their framework's own stop."""

    def __init__(self, step=None):
        super().__init__("a person stopped the run"
                         + ("" if step is None else f" at step {step}"))
        #: The step at which the stop was applied.
        self.step = step


def _finite(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def parse(datagram):
    """The ``(target, value, event)`` of a control datagram, or ``None`` when it is not one
    (not UTF-8 JSON, another kind, no target)."""
    try:
        text = datagram.decode("utf-8")
        event = json.loads(text.strip().splitlines()[0]) if text.strip() else None
    except (UnicodeDecodeError, ValueError, IndexError):
        return None
    if not isinstance(event, dict) or event.get("kind") != "control":
        return None
    target = event.get("target")
    if not isinstance(target, str):
        return None
    value = event.get("value", 1.0)
    if isinstance(value, str):  # "NaN", "Infinity": JSON's missing literals
        value = _finite(value)
    return target, value, event


def _resolve(addr):
    """The IP addresses ``addr``'s host names (controls are taken only from them)."""
    host, port = addr
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return {(host, port)}
    return {(info[4][0], info[4][1]) for info in infos} | {(host, port)}


def _set(group, key, value):
    """Sets ``group[key]`` to ``value``, in place when it is a tensor (capturable optimizers)."""
    old = group.get(key)
    if hasattr(old, "fill_"):
        old.fill_(value)
    else:
        group[key] = value


def _scalar(x):
    if hasattr(x, "item"):
        x = x.item()
    return float(x)


class Controls:
    """The control state of one run: reads ``sock`` and applies what arrives.

    ``optimizer``/``scheduler``: applied to (the latest given to :meth:`poll` wins);
    ``on_checkpoint(step)``: called for ``checkpoint``; ``accept_from``: the addresses
    controls are taken from (others are counted in ``bad``); ``run``, ``rank``: a control
    tagged for another run or rank is ignored; ``interval``: least seconds between two
    looks at the socket (0: every poll); ``world_size``: ranks of a distributed run (more
    than one: every rank applies a control at the same step, see
    :data:`DISTRIBUTED_LEAD_STEPS`).
    """

    def __init__(self, sock=None, accept_from=None, optimizer=None, scheduler=None,
                 on_checkpoint=None, run=None, rank=None, log=None,
                 interval=DEFAULT_INTERVAL, world_size=1):
        self.sock = sock
        self.interval = float(interval)
        self._next_look = 0.0
        self._poller = None
        self._polled_fd = None
        self.accept_from = accept_from
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.on_checkpoint = on_checkpoint
        self.run = run
        self.rank = rank
        self.world_size = world_size or 1
        #: Controls held for the step every rank applies them at: (step, target, value, event).
        self.pending = []
        self.log = log or sys.stderr
        #: Controls applied.
        self.applied = 0
        #: Datagrams that were not control lines, or came from another address.
        self.bad = 0
        #: Controls that could not apply (an unknown target, another run, no optimizer).
        self.ignored = 0
        #: Exceptions raised by the ``on_checkpoint`` hook (caught; the first is printed).
        self.hook_errors = 0
        #: Checkpoint hooks called.
        self.checkpoints = 0
        #: The factor ``lr_scale`` put on the run's own learning rate.
        self.lr_scale = 1.0
        #: Whether a ``pause`` holds the run.
        self.paused = False
        #: Whether a ``stop`` arrived and is still to be raised.
        self.stopped = False
        #: Whether a ``stop`` was raised in this run (``close()`` then reports ``stopped``).
        self.was_stopped = False
        #: Seconds spent paused.
        self.paused_seconds = 0.0
        self._noted = set()
        # Datagrams are received into this buffer: no 64 KiB allocation per read.
        self._buf = bytearray(_RECV_BYTES)
        self._view = memoryview(self._buf)

    # ---- reading --------------------------------------------------------------------

    def _waiting(self, sock):
        """Whether something may wait in ``sock``: ``poll(0)`` where there is ``poll``
        (cheaper than a failing ``recv``), else always."""
        if not _HAS_POLL:
            return True
        fd = sock.fileno()
        if fd < 0:
            return False
        if fd != self._polled_fd:
            self._poller = select.poll()
            self._poller.register(fd, select.POLLIN)
            self._polled_fd = fd
        return bool(self._poller.poll(0))

    def _read(self, step, now=False):
        """Applies every control waiting in the socket (at most :data:`MAX_PER_POLL`); looks
        at most once per ``interval`` unless ``now``."""
        sock = self.sock
        if sock is None:
            return
        if not now and self.interval > 0:
            t = time.monotonic()
            if t < self._next_look:
                return
            self._next_look = t + self.interval
        if not self._waiting(sock):
            return
        for _ in range(MAX_PER_POLL):
            try:
                n, sender = sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # e.g. ECONNREFUSED echoed by some systems, a closed socket: go on.
                return
            if self.accept_from is not None and tuple(sender[:2]) not in self.accept_from:
                self.bad += 1
                continue
            control = parse(bytes(self._view[:n]))
            if control is None:
                self.bad += 1
                continue
            at = self._agreed_step(control[2])
            if at is not None and step is not None and step < at:
                self.pending.append((at, *control))
                continue
            self.apply(*control[:2], step=step, event=control[2])

    def _agreed_step(self, event):
        """The step every rank of a distributed run applies ``event`` at, or ``None``: not
        distributed, no step on the event, or paused (the ranks wait at one step already)."""
        if self.world_size <= 1 or self.paused or not isinstance(event, dict):
            return None
        stamped = event.get("step")
        if not isinstance(stamped, int):
            return None
        return stamped + DISTRIBUTED_LEAD_STEPS

    def _apply_due(self, step):
        """Applies the held controls whose step has come (all of them when ``step`` is
        unknown or the run is paused)."""
        due = [p for p in self.pending if step is None or self.paused or p[0] <= step]
        if due:
            self.pending = [p for p in self.pending if p not in due]
            for _, target, value, event in due:
                self.apply(target, value, step=step, event=event)

    def poll(self, step, optimizer=None, scheduler=None, now=False):
        """Reads and applies the waiting controls (looking at the socket at most once per
        ``interval`` unless ``now``); while paused, waits (reading controls) until
        ``resume``, ``pause 0`` or ``stop``. Raises :class:`StopTraining` after a ``stop``;
        nothing else."""
        if optimizer is not None:
            self.optimizer = optimizer
        if scheduler is not None:
            self.scheduler = scheduler
        self._read(step, now)
        if self.pending:
            self._apply_due(step)
        if self.paused and not self.stopped:
            self._wait(step)
        if self.stopped:
            self.stopped = False
            self.was_stopped = True
            raise StopTraining(step)

    def _wait(self, step):
        started = time.monotonic()
        try:
            while self.paused and not self.stopped and self.sock is not None:
                try:
                    ready, _, _ = select.select([self.sock], [], [], PAUSE_POLL)
                except (OSError, ValueError):
                    time.sleep(PAUSE_POLL)  # a closed socket: Ctrl-C still ends the wait
                    continue
                if ready:
                    self._read(step, now=True)
        finally:
            self.paused_seconds += time.monotonic() - started

    # ---- applying -------------------------------------------------------------------

    def _note(self, key, text):
        if key not in self._noted:
            self._noted.add(key)
            try:
                self.log.write(f"sonograd: {text}\n")
            except Exception:  # noqa: BLE001
                pass

    def _groups(self, target):
        opt = self.optimizer
        groups = getattr(opt, "param_groups", None)
        if not groups:
            self._note("no-optimizer", f"a `{target}` control arrived but no optimizer is "
                       "known: pass optimizer= to step() or monitor(); ignored")
            return None
        return groups

    def _base_lrs(self):
        """The scheduler's ``base_lrs`` (closed-form schedules, e.g. ``LambdaLR``, compute the
        lr from them each step), or ``None``."""
        for sched in (self.scheduler, getattr(self.scheduler, "scheduler", None)):
            lrs = getattr(sched, "base_lrs", None)  # (accelerate wraps it in .scheduler)
            if isinstance(lrs, list):
                return lrs
        return None

    def apply(self, target, value, step=None, event=None):
        """Applies one control; returns whether it took effect. Never raises."""
        if event is not None:
            run, rank = event.get("run"), event.get("rank")
            if (run is not None and self.run is not None and run != self.run) or \
                    (rank is not None and self.rank is not None and rank != self.rank):
                self.ignored += 1
                return False
        try:
            done = self._apply(target, value, step)
        except Exception as e:  # noqa: BLE001 - a control must not break the loop
            self._note("apply-error", f"applying a `{target}` control failed "
                       f"({type(e).__name__}: {e}); ignored")
            done = False
        if done:
            self.applied += 1
        else:
            self.ignored += 1
        return done

    def _apply(self, target, value, step):
        v = _finite(value)
        if target in ("lr", "lr_scale", "momentum"):
            if v is None or v < 0 or (target == "lr_scale" and v == 0):
                return False
            groups = self._groups(target)
            if groups is None:
                return False
            if target == "lr":
                self._set_lr(groups, v)
            elif target == "lr_scale":
                self._scale_lr(groups, v / self.lr_scale)
                self.lr_scale = v
            else:
                self._set_momentum(groups, v)
            return True
        if target == "pause":
            if v is None:
                return False
            self.paused = v >= 0.5
            return True
        if target == "resume":
            self.paused = False
            return True
        if target == "stop":
            self.stopped = True
            self.paused = False
            return True
        if target == "checkpoint":
            return self._checkpoint(step)
        self._note("target:" + str(target)[:40],
                   f"a control for `{str(target)[:40]}` arrived; a Python run applies only "
                   f"{', '.join(TARGETS)}; ignored")
        return False

    def _set_lr(self, groups, lr):
        """Sets each group's lr to ``lr``, and moves the scheduler's base lr (and the group's
        ``initial_lr``) by the same ratio, so a closed-form schedule (``LambdaLR``, the
        Transformers schedules) goes on from the new value rather than overwriting it."""
        for i, group in enumerate(groups):
            old = _scalar(group["lr"])
            _set(group, "lr", lr)
            self._move_base(i, group, lr / old if old > 0 else None, lr)

    def _scale_lr(self, groups, ratio):
        """Multiplies each group's lr, the scheduler's base lr and ``initial_lr`` by ``ratio``:
        a chained schedule (``StepLR``, ``ExponentialLR``) goes on from the scaled lr, a
        closed-form one from the scaled base."""
        for i, group in enumerate(groups):
            _set(group, "lr", _scalar(group["lr"]) * ratio)
            self._move_base(i, group, ratio, None)

    def _move_base(self, i, group, ratio, lr):
        """Multiplies group ``i``'s base lrs by ``ratio``; sets them to ``lr`` when there is no
        ratio (the old lr was 0)."""
        def moved(x):
            return _scalar(x) * ratio if ratio is not None else lr

        base = self._base_lrs()
        if base is not None and i < len(base):
            base[i] = moved(base[i])
        if "initial_lr" in group:
            group["initial_lr"] = moved(group["initial_lr"])

    @staticmethod
    def _set_momentum(groups, v):
        for group in groups:
            if "momentum" in group:
                _set(group, "momentum", v)
            elif "betas" in group:
                betas = group["betas"]
                group["betas"] = (v, *tuple(betas)[1:])
            else:
                raise ValueError(f"the optimizer's groups have neither momentum nor betas "
                                 f"(keys: {', '.join(sorted(group))})")

    def _checkpoint(self, step):
        hook = self.on_checkpoint
        if hook is None:
            self._note("no-hook", "a `checkpoint` control arrived but no on_checkpoint hook "
                       "was given to monitor(); ignored")
            return False
        self.checkpoints += 1
        try:
            hook(step)
        except Exception as e:  # noqa: BLE001 - the user's hook must not end the run
            self.hook_errors += 1
            if self.hook_errors == 1:
                self._note("hook-error", f"the on_checkpoint hook failed at step {step} "
                           f"({type(e).__name__}: {e}); training goes on, further failures "
                           "are only counted")
        return True
