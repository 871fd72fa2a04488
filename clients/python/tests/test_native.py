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


def test_the_thread_sees_a_control_arrive_between_steps(receiver):
    torch = need("torch")
    model = mlp((8, 4), seed=2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sonifier = sonograd.monitor(model, port=receiver.port, optimizer=opt)
    for _ in range(3):
        model(torch.randn(2, 8)).sum().backward()
        sonifier.step(optimizer=opt)
        opt.zero_grad()
    native = native_or_skip(sonifier)
    receiver.drain()
    # Nothing came: the step needs no look at the socket.
    assert native.waiting() == 0
    event = {"v": 1, "step": 3, "epoch": 0, "time": time.time(), "kind": "control",
             "control": "lr", "source": "test", "target": "lr", "value": 0.02}
    receiver.sock.sendto(json.dumps(event).encode(), receiver.client)
    deadline = time.monotonic() + 5
    while native.waiting() != 1:  # seen by the thread, no step taken
        assert time.monotonic() < deadline, "the thread never saw the control"
        time.sleep(0.001)
    model(torch.randn(2, 8)).sum().backward()
    sonifier.step(optimizer=opt)
    assert opt.param_groups[0]["lr"] == 0.02
    assert sonifier.controls_applied == 1
    # Read and rearmed: the thread watches again, and sees the next one too.
    assert native.waiting() == 0
    receiver.sock.sendto(json.dumps({**event, "value": 0.03}).encode(), receiver.client)
    deadline = time.monotonic() + 5
    while native.waiting() != 1:
        assert time.monotonic() < deadline, "the thread stopped watching"
        time.sleep(0.001)
    sonifier.step(optimizer=opt)
    assert opt.param_groups[0]["lr"] == 0.03
    sonifier.close()
    # The lr each step carried: the control's from the step it applied at.
    lrs = [s["lr"] for s in receiver.drain()]
    assert lrs[-2:] == [0.02, 0.03], lrs
