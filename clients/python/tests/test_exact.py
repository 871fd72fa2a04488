"""The norms `listen` records are the gradients' true norms (float64 references computed
here), whatever the loop does to the gradients right after the call; alarms are on time."""

import math
import os
import shutil

import pytest

import sonograd
from conftest import need, of_kind, value
from models import close, mlp, reference


def train(model, sonifier, steps, batch, seed, clip=None, set_to_none=True, accumulate=1,
          poison=None):
    """Trains with SGD; returns each step's reference norms, loss and lr, taken just before
    ``sonifier.step``. ``poison(step, model)`` may corrupt gradients before the call."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    n_in = model[0].in_features
    n_out = model[-1].out_features
    refs = []
    for step in range(steps):
        losses = []
        for _ in range(accumulate):
            x = torch.randn(batch, n_in, generator=gen)
            y = torch.randint(0, n_out, (batch,), generator=gen)
            loss = torch.nn.functional.cross_entropy(model(x), y) / accumulate
            loss.backward()
            losses.append(loss.item())
        if poison:
            poison(step, model)
        refs.append((reference(model), sum(losses), opt.param_groups[0]["lr"]))
        sonifier.step(loss=sum(losses), optimizer=opt)
        if clip is not None:  # in place, right after the call
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=set_to_none)
    sonifier.close()
    return refs


def check_recorded(events, refs, run):
    for step, ((layers, total), loss, lr) in enumerate(refs):
        got = {e["layer"]: value(e["value"])
               for e in of_kind(events, "grad_norm", step=step, run=run)}
        assert set(got) == set(layers), (step, got, layers)
        for name, ref in layers.items():
            assert close(got[name], ref), (step, name, got[name], ref)
        (t,) = of_kind(events, "total_norm", step=step, run=run)
        assert close(value(t["value"]), total), (step, t, total)
        (l,) = of_kind(events, "loss", step=step, run=run)
        assert close(value(l["value"]), loss, rel=1e-6), (step, l, loss)
        (r,) = of_kind(events, "lr", step=step, run=run)
        assert close(value(r["value"]), lr), (step, r, lr)


@pytest.mark.parametrize("seed,sizes,batch,clip,set_to_none,background,accumulate", [
    (0, (784, 256, 128, 64, 10), 20, None, True, True, 1),
    (1, (40, 33, 17, 5), 7, 0.05, True, True, 1),
    (2, (12, 64, 3), 1, 1e-3, False, True, 2),
    (3, (30, 20, 20, 20, 4), 64, 0.5, False, False, 1),
    (4, (16, 8, 2), 5, 1e-6, True, True, 3),
])
def test_norms_equal_float64_references_even_when_clipped_right_after(
        listen, seed, sizes, batch, clip, set_to_none, background, accumulate):
    need("torch")
    model = mlp(sizes, seed=seed)
    listener = listen(runs_ending=1)
    run = f"exact{seed}"
    sonifier = sonograd.monitor(model, port=listener.port, run=run, background=background)
    refs = train(model, sonifier, steps=12, batch=batch, seed=seed, clip=clip,
                 set_to_none=set_to_none, accumulate=accumulate)
    events = listener.wait().events()
    check_recorded(events, refs, run)
    assert sonifier.errors == 0
    assert listener.accounting()["bad"] == 0
    if shutil.which(os.environ.get("CC") or "cc"):
        # With a C compiler these steps went through the native path (sonograd/_native.c).
        assert sonifier._native, "the native path was not used"


class Capture:
    """A sender that keeps what it is given, to see when each step goes out."""

    max_bytes = sonograd.wire.MAX_DATAGRAM

    def __init__(self):
        self.datagrams = []

    def send(self, d):
        self.datagrams.append(d)
        return True

    def send_lines(self, lines):
        self.datagrams.extend(line.encode() for line in lines)

    def close(self):
        pass

    def steps(self):
        return [sonograd.unpack_step(d)["step"] for d in self.datagrams if d[:1] == b"\0"]


def test_each_step_is_sent_by_the_end_of_the_next_call():
    torch = need("torch")
    model = mlp((20, 10, 3))
    capture = Capture()
    sonifier = sonograd.monitor(model, sender=capture)
    for step in range(30):
        model(torch.randn(4, 20)).sum().backward()
        sonifier.step()
        # The previous step has gone out; this one may too (a step measured on the training
        # thread, when every core is busy, is sent at once).
        assert capture.steps() in (list(range(step)), list(range(step + 1))), capture.steps()
        model.zero_grad()
    sonifier.flush()
    assert capture.steps() == list(range(30))


@pytest.mark.parametrize("at,layer,bad,state", [(4, 2, float("nan"), "nan"),
                                              (2, 0, float("inf"), "inf"),
                                              (0, 4, float("-inf"), "inf")])
def test_nan_and_inf_alarms_arrive_for_their_step(listen, at, layer, bad, state):
    need("torch")
    model = mlp((24, 16, 8, 3), seed=5)
    listener = listen(runs_ending=1)
    sonifier = sonograd.monitor(model, port=listener.port, run="alarm")

    def poison(step, model):
        if step == at:
            model[layer].bias.grad[1] = bad

    train(model, sonifier, steps=8, batch=4, seed=5, poison=poison)
    events = listener.wait().events()
    alarms = of_kind(events, "non_finite", run="alarm", quantity="grad")
    first = min(e["step"] for e in alarms)
    # The update spreads the bad value to the weights, and from there to later gradients;
    # the first alarm is the step and layer the test set up.
    assert first == at, alarms
    assert [(e["layer"], e["state"]) for e in alarms if e["step"] == at] == [(str(layer), state)]
    (total,) = of_kind(events, "total_norm", step=at)
    assert value(total["value"]) == math.inf if state == "inf" else \
        math.isnan(value(total["value"]))


def test_an_inf_loss_raises_a_loss_alarm(listen):
    torch = need("torch")
    model = mlp((6, 4, 2))
    listener = listen(runs_ending=1)
    sonifier = sonograd.monitor(model, port=listener.port)
    for step in range(4):
        loss = model(torch.randn(3, 6)).sum()
        loss.backward()
        sonifier.step(loss=float("inf") if step == 2 else loss)
        model.zero_grad()
    sonifier.close()
    events = listener.wait().events()
    (alarm,) = of_kind(events, "non_finite", quantity="loss")
    assert (alarm["step"], alarm["state"]) == (2, "inf")


def test_a_compiled_model_gives_the_eager_norms():
    torch = need("torch")
    eager = mlp((32, 24, 16, 4), seed=9)
    compiled_base = mlp((32, 24, 16, 4), seed=9)
    compiled = torch.compile(compiled_base)
    got = {}
    for name, model in (("eager", eager), ("compiled", compiled)):
        capture = Capture()
        sonifier = sonograd.monitor(model, sender=capture, run=name)
        gen = torch.Generator().manual_seed(1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(4):
            x = torch.randn(8, 32, generator=gen)
            loss = model(x).pow(2).mean()
            loss.backward()
            sonifier.step(loss=loss, optimizer=opt)
            opt.step()
            opt.zero_grad()
        sonifier.flush()
        got[name] = [sonograd.unpack_step(d) for d in capture.datagrams if d[:1] == b"\0"]
    assert len(got["eager"]) == len(got["compiled"]) == 4
    for e, c in zip(got["eager"], got["compiled"]):
        assert [n for _, n, _ in e["layers"]] == [n for _, n, _ in c["layers"]] == ["0", "2", "4"]
        for (_, _, a), (_, _, b) in zip(e["layers"], c["layers"]):
            assert close(a, b, rel=1e-5), (a, b)
        assert close(e["total"], c["total"], rel=1e-5)
        assert close(e["loss"], c["loss"], rel=1e-5)
