"""On a GPU the client never synchronises the host: norms and loss reach the host through a
non-blocking copy into pinned memory, read once a CUDA event says it arrived. Skipped where
there is no CUDA device (the development machine has none)."""

import pytest

import sonograd
from conftest import need
from models import close, reference
from test_exact import Capture


def test_no_step_synchronises_under_sync_debug_mode():
    torch = need("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 784, device="cuda")
    y = torch.randint(0, 10, (64,), device="cuda")
    capture = Capture()
    sonifier = sonograd.monitor(model, sender=capture)
    refs = []
    for step in range(20):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if step % 5 == 0:  # references (they synchronise) outside the checked region
            refs.append((step, reference(model), loss.item()))
        torch.cuda.set_sync_debug_mode("error")
        try:
            sonifier.step(loss=loss, optimizer=opt)
            opt.step()
            opt.zero_grad()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    sonifier.close()
    assert sonifier.errors == 0 and sonifier.skipped == 0
    steps = {r["step"]: r for r in map(sonograd.unpack_step,
                                        (d for d in capture.datagrams if d[:1] == b"\0"))}
    assert sorted(steps) == list(range(20))
    for step, (layers, total), loss in refs:
        got = {name: v for _, name, v in steps[step]["layers"]}
        for name, ref in layers.items():
            assert close(got[name], ref, rel=1e-5), (step, name)
        assert close(steps[step]["total"], total, rel=1e-5)
        assert close(steps[step]["loss"], loss, rel=1e-6)
