"""The native CPU path (sonograd/_native.c) as the wire sees it: each step's datagram is out by
the end of the next call and in order, even when its thread never gets a core; losses and
learning rates of every kind are read right; the thread watches the socket for controls so
that a step makes no system call to look at it."""

import json
import math
import os
import socket
import time

import pytest

import sonograd
from conftest import need
from models import close, mlp, reference


class Receiver:
    """A UDP socket the client sends to; hands back the compact step datagrams received."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.client = None
        self.steps = []

    def drain(self):
        """The steps received so far (``unpack_step`` dicts), in arrival order."""
        while True:
            try:
                data, self.client = self.sock.recvfrom(65536)
            except BlockingIOError:
                return self.steps
            if data[:1] == b"\0":
                self.steps.append(sonograd.unpack_step(data))

    def close(self):
        self.sock.close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def native_or_skip(sonifier):
    if not sonifier._native:
        if os.environ.get("CI"):
            pytest.fail("the native path is not in use (no C compiler?)")
        pytest.skip("no native path here")
    return sonifier._native


def test_each_step_is_on_the_wire_by_the_end_of_the_next_call(receiver):
    torch = need("torch")
    model = mlp((30, 20, 5), seed=3)
    sonifier = sonograd.monitor(model, port=receiver.port)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    refs = []
    for step in range(200):
        model(torch.randn(6, 30)).pow(2).mean().backward()
        refs.append(reference(model))
        sonifier.step(optimizer=opt)
        native_or_skip(sonifier)
        got = [s["step"] for s in receiver.drain()]
        # Loopback delivers within the send: the previous step is there, this one may be.
        assert got in (list(range(step)), list(range(step + 1))), got[-5:]
        opt.step()
        opt.zero_grad()
    sonifier.close()
    steps = receiver.drain()
    assert [s["step"] for s in steps] == list(range(200))
    for s, (layers, total) in zip(steps, refs):
        assert [n for _, n, _ in s["layers"]] == list(layers)
        for (_, name, v), ref in zip(s["layers"], layers.values()):
            assert close(v, ref), (s["step"], name, v, ref)
        assert close(s["total"], total)
    assert sonifier.errors == 0


def test_a_starved_thread_loses_nothing_and_keeps_the_order(receiver):
    torch = need("torch")
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no sched_setaffinity")
    before = os.sched_getaffinity(0)
    # This thread and the measuring thread it starts share one core; the measuring thread
    # (SCHED_IDLE) then rarely runs before the next step, which does its work.
    os.sched_setaffinity(0, {min(before)})
    try:
        model = mlp((16, 12, 4), seed=4)
        sonifier = sonograd.monitor(model, port=receiver.port)
        refs = []
        for step in range(400):
            model(torch.randn(3, 16)).pow(2).sum().backward()
            refs.append(reference(model))
            sonifier.step(loss=float(step))
            model.zero_grad()
        native_or_skip(sonifier)
        sonifier.close()
    finally:
        os.sched_setaffinity(0, before)
    steps = receiver.drain()
    assert [s["step"] for s in steps] == list(range(400))
    assert [s["loss"] for s in steps] == [float(i) for i in range(400)]
    for s, (layers, total) in zip(steps, refs):
        assert close(s["total"], total), (s["step"], s["total"], total)
    # The path under test was taken: steps the thread had not done by the next call.
    assert sonifier.stolen > 0
    assert sonifier.errors == 0


def test_losses_and_learning_rates_of_every_kind_are_read_right(receiver):
    torch = need("torch")
    model = mlp((8, 4), seed=1)
    sonifier = sonograd.monitor(model, port=receiver.port)
    base = torch.tensor([0.5, 2.25, -3.0])
    losses = [
        ("loss with a graph", None),
        ("float64", torch.tensor(1.0 / 3.0, dtype=torch.float64)),
        ("bfloat16", torch.tensor(1.5, dtype=torch.bfloat16)),
        ("float16", torch.tensor(0.25, dtype=torch.float16)),
        ("one-element 1-D", torch.tensor([7.0])),
        ("element view with an offset", base[1]),
        ("int", 3),
        ("float", 2.5),
        ("nan tensor", torch.tensor(float("nan"))),
        ("-inf tensor", torch.tensor(float("-inf"))),
    ]
    try:
        import numpy

        losses.append(("numpy float32", numpy.float32(0.75)))
    except ImportError:
        pass
    expected = []
    for step, (_, given) in enumerate(losses):
        out = model(torch.randn(2, 8)).pow(2).mean()
        out.backward()
        loss = out if given is None else given
        lr = torch.tensor(0.01 * (step + 1), dtype=torch.float64) if step % 2 else 0.5
        expected.append((float(loss.item() if hasattr(loss, "item") else loss), float(lr)))
        sonifier.step(loss=loss, lr=lr)
        native_or_skip(sonifier)
        model.zero_grad()
    sonifier.close()
    steps = receiver.drain()
    assert len(steps) == len(losses)
    for s, (name, _), (loss, lr) in zip(steps, losses, expected):
        if math.isnan(loss):
            assert math.isnan(s["loss"]), name
        else:
            assert s["loss"] == loss, (name, s["loss"], loss)
        assert s["lr"] == lr, (name, s["lr"], lr)
    assert sonifier.errors == 0


def test_a_loss_that_is_no_scalar_is_counted_not_raised(receiver):
    torch = need("torch")
    model = mlp((8, 4), seed=1)
    sonifier = sonograd.monitor(model, port=receiver.port)
    model(torch.randn(2, 8)).sum().backward()
    sonifier.step(loss=torch.tensor([1.0, 2.0]))  # item() of two elements fails
    sonifier.step(loss=object())
    native_or_skip(sonifier)
    sonifier.close()
    assert sonifier.errors == 2


def test_a_parameter_whose_data_is_replaced_is_measured_at_its_new_size(receiver):
    torch = need("torch")

    class Vector(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.p = torch.nn.Parameter(torch.randn(n))

        def forward(self):
            return self.p.pow(2).sum()

    torch.manual_seed(5)
    model = Vector(1_000_000)
    sonifier = sonograd.monitor(model, port=receiver.port)
    refs = []
    # Shrunk far below the first step's size (reading the old size would run off the
    # buffer), then grown past it (reading the old size would miss most of it).
    for n in (1_000_000, 1_000_000, 10, 3, 2_000_000):
        if model.p.numel() != n:
            model.p.data = torch.randn(n)
        model.zero_grad()
        model().backward()
        refs.append(reference(model)[1])
        sonifier.step()
    native_or_skip(sonifier)
    sonifier.close()
    steps = receiver.drain()
    assert [s["step"] for s in steps] == list(range(5))
    for s, ref in zip(steps, refs):
        assert close(s["total"], ref), (s["step"], s["total"], ref)
    assert sonifier.errors == 0


def test_a_parameter_type_with_its_own_grad_is_read_through_it(receiver):
    torch = need("torch")

    class Scaled(torch.nn.Parameter):
        """A parameter whose grad reads as twice what autograd left."""

        @property
        def grad(self):
            g = torch.Tensor.grad.__get__(self)
            return None if g is None else g * 2

    model = mlp((6, 3), seed=2)
    model[0].weight = Scaled(model[0].weight.detach().clone())
    sonifier = sonograd.monitor(model, port=receiver.port)
    model(torch.randn(4, 6)).sum().backward()
    w = torch.Tensor.grad.__get__(model[0].weight).double()
    b = model[0].bias.grad.double()
    sonifier.step()
    native_or_skip(sonifier)
    sonifier.close()
    (s,) = receiver.drain()
    want = math.sqrt((2 * w).pow(2).sum().item() + b.pow(2).sum().item())
    assert close(s["total"], want), (s["total"], want)


def watched(torch, model, sonifier, opt, native):
    """Takes slow steps until the thread watches the socket again (a send it missed under
    load makes the caller look for itself for a few steps): waiting() is then 0 or 1."""
    deadline = time.monotonic() + 20
    while native.waiting() == 2:
        assert time.monotonic() < deadline, "the thread never watched the socket"
        model(torch.randn(2, 8)).sum().backward()
        sonifier.step(optimizer=opt)
        opt.zero_grad()
        time.sleep(0.01)


def test_the_thread_sees_a_control_arrive_between_steps(receiver):
    torch = need("torch")
    model = mlp((8, 4), seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sonifier = sonograd.monitor(model, port=receiver.port, optimizer=opt)
    model(torch.randn(2, 8)).sum().backward()
    sonifier.step(optimizer=opt)
    opt.zero_grad()
    native = native_or_skip(sonifier)
    receiver.drain()
    event = {"v": 1, "step": 3, "epoch": 0, "time": time.time(), "kind": "control",
             "control": "lr", "source": "test", "target": "lr"}
    for value in (0.02, 0.03):
        watched(torch, model, sonifier, opt, native)
        # Nothing came: a step needs no look at the socket.
        assert native.waiting() == 0
        receiver.sock.sendto(json.dumps({**event, "value": value}).encode(), receiver.client)
        deadline = time.monotonic() + 5
        while native.waiting() != 1:  # seen by the thread, no step taken
            assert time.monotonic() < deadline, "the thread never saw the control"
            time.sleep(0.001)
        model(torch.randn(2, 8)).sum().backward()
        sonifier.step(optimizer=opt)
        opt.zero_grad()
        assert opt.param_groups[0]["lr"] == value
        # Read and rearmed: the thread watches again (or, should it have missed a send just
        # now, the caller looks for itself).
        assert native.waiting() in (0, 2)
    assert sonifier.controls_applied == 2
    sonifier.close()
    # The lr each step carried: the control's from the step it applied at.
    lrs = [s["lr"] for s in receiver.drain()]
    assert 0.02 in lrs and lrs[-1] == 0.03, lrs
    assert lrs.index(0.02) < lrs.index(0.03)


KERNEL_CHECK = r"""
import json, math, socket, sys
import torch
import sonograd
from sonograd._build import native

sizes = [1, 7, 511, 512, 513, 1023, 1024, 1025, 4097, 100003]
dtypes = [torch.float32, torch.float64, torch.bfloat16]
scales = [1e-30, 1e-21, 1e-12, 1.0, 3e7, 1e19, 1e25]


class Holder(torch.nn.Module):
    def __init__(self, n, dtype):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n, dtype=dtype))


model = torch.nn.ModuleDict({f"l{i}": Holder(n, dt) for i, (n, dt) in
                             enumerate((n, dt) for n in sizes for dt in dtypes)})
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
sink.bind(("127.0.0.1", 0))
sonifier = sonograd.monitor(model, port=sink.getsockname()[1])
gen = torch.Generator().manual_seed(7)
refs = []
for step, scale in enumerate(scales):
    ref = {}
    for name, p in model.named_parameters():
        g = (torch.randn(p.numel(), generator=gen, dtype=torch.float64) * scale).to(p.dtype)
        p.grad = g
        ref[name.rpartition(".")[0]] = math.sqrt(g.double().pow(2).sum().item())
    refs.append(ref)
    sonifier.step()
sonifier.close()
sink.setblocking(False)
got = []
while True:
    try:
        d = sink.recv(65536)
    except BlockingIOError:
        break
    if d[:1] == b"\0":
        got.append(sonograd.unpack_step(d))
simd = native().SIMD if sonifier._native else None
print(json.dumps({"simd": simd, "native": bool(sonifier._native), "refs": refs,
                  "got": [{n: v for _, n, v in s["layers"]} for s in got],
                  "errors": sonifier.errors}))
"""


@pytest.mark.parametrize("simd,level", [("avx512", 2), ("avx2", 1), ("none", 0),
                                        ("python", None)])
def test_every_kernel_gives_float64_norms_from_vanishing_to_huge(simd, level):
    """Each sum-of-squares kernel (SONOGRAD_SIMD caps the one the processor would take), and
    the Python path, on sizes around their block edges, float32 / float64 / bfloat16
    gradients, elements from 1e-30 (squares below float32's range) to 1e25 (squares above)."""
    need("torch")
    import subprocess
    import sys

    env = dict(os.environ, SONOGRAD_SIMD=simd)
    if simd == "python":
        env["SONOGRAD_NO_NATIVE"] = "1"
    out = subprocess.run([sys.executable, "-c", KERNEL_CHECK], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if level is not None:
        if not r["native"]:
            native_or_skip(type("S", (), {"_native": False})())
        if r["simd"] < level:
            pytest.skip(f"this processor has no {simd} (SIMD level {r['simd']})")
        assert r["simd"] == level
    assert r["errors"] == 0
    assert len(r["got"]) == len(r["refs"])
    for got, ref in zip(r["got"], r["refs"]):
        assert set(got) == set(ref)
        for name, want in ref.items():
            assert close(got[name], want), (simd, name, got[name], want)
