"""The client never breaks the training loop: odd models, a listener that goes away or
comes late, a closed sonifier. Each trains to the end without an exception."""

import socket

import sonograd
from conftest import need, of_kind


def run_steps(model, sonifier, steps=6, make_input=None):
    import torch

    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad] or
                          [torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for step in range(steps):
        x = make_input() if make_input else torch.randn(4, 8)
        out = model(x)
        loss = out.sum() if out.requires_grad else out.sum().requires_grad_()
        loss.backward()
        sonifier.step(loss=loss, optimizer=opt)
        opt.step()
        opt.zero_grad()


def test_a_model_without_parameters(listen):
    torch = need("torch")
    listener = listen(runs_ending=1)
    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Tanh())
    sonifier = sonograd.monitor(model, port=listener.port, run="empty")
    run_steps(model, sonifier)
    sonifier.close()
    events = listener.wait().events()
    assert sonifier.errors == 0
    assert of_kind(events, "grad_norm") == [] and of_kind(events, "total_norm") == []
    assert [e["step"] for e in of_kind(events, "loss")] == list(range(6))
    assert of_kind(events, "run_start")[0]["layers"] == []


def test_frozen_layers_are_left_out(listen):
    torch = need("torch")
    listener = listen(runs_ending=1)
    model = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    for p in model[0].parameters():
        p.requires_grad_(False)
    sonifier = sonograd.monitor(model, port=listener.port)
    run_steps(model, sonifier)
    sonifier.close()
    events = listener.wait().events()
    assert {e["layer"] for e in of_kind(events, "grad_norm")} == {"2"}
    assert len(of_kind(events, "total_norm")) == 6 and sonifier.errors == 0


def test_parameters_that_never_get_a_gradient(listen):
    torch = need("torch")

    class Partial(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.used = torch.nn.Linear(8, 3)
            self.unused = torch.nn.Linear(8, 3)  # never called

        def forward(self, x):
            return self.used(x)

    listener = listen(runs_ending=1)
    model = Partial()
    sonifier = sonograd.monitor(model, port=listener.port)
    run_steps(model, sonifier)
    sonifier.close()
    events = listener.wait().events()
    assert {e["layer"] for e in of_kind(events, "grad_norm")} == {"used"}
    assert of_kind(events, "run_start")[0]["layers"] == ["used", "unused"]
    assert sonifier.errors == 0


def test_no_listener_at_all_and_one_that_goes_away(listen):
    torch = need("torch")
    model = torch.nn.Linear(8, 2)
    # Nobody on this port: every send is refused (ECONNREFUSED) or dropped.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sonifier = sonograd.monitor(model, port=port)
    run_steps(model, sonifier, steps=20)
    sonifier.close()
    assert sonifier.errors == 0
    # A listener that stops in the middle of the run.
    listener = listen()
    sonifier = sonograd.monitor(model, port=listener.port)
    run_steps(model, sonifier, steps=5)
    sonifier.flush()
    listener.stop()
    run_steps(model, sonifier, steps=20)
    sonifier.close()
    sonifier.close()  # twice is fine
    sonifier.step()  # after closing: ignored
    assert sonifier.errors == 0
    assert len(of_kind(listener.events(), "loss")) >= 4


def test_a_listener_started_after_the_run_hears_the_rest(listen):
    torch = need("torch")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    model = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
    sonifier = sonograd.monitor(model, port=port, run="late")
    run_steps(model, sonifier, steps=10)  # run_start and 10 steps go nowhere
    sonifier.flush()
    listener = listen(runs_ending=1, port=port)  # now someone listens on that port
    run_steps(model, sonifier, steps=10)
    sonifier.close()
    events = listener.wait().events()
    steps = sorted({e["step"] for e in of_kind(events, "grad_norm")})
    assert steps[-1] == 19 and len(steps) >= 9, steps
    # Each datagram names its layers, so the late listener knows them without run_start.
    assert {e["layer"] for e in of_kind(events, "grad_norm")} == {"0", "2"}
    assert of_kind(events, "run_start") == []
    assert listener.accounting()["bad"] == 0
