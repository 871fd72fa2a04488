"""Distributed runs under torchrun with gloo on the CPU: DDP ranks each tagged; FSDP2
(`fully_shard`) ranks send their shards' sums of squares and `listen` adds them up into the
true per-layer and total norms."""

import json
import os
import subprocess
import sys

import pytest

from conftest import CLIENT, need, of_kind, value
from models import close

SCRIPT = os.path.join(os.path.dirname(__file__), "dist_train.py")


def torchrun(mode, port, out, world=2, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLIENT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc_per_node", str(world), SCRIPT, "--mode", mode, "--port", str(port),
           "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(out.read_text()) if out.exists() else None


def test_ddp_every_rank_is_tagged(listen, tmp_path):
    need("torch")
    listener = listen(runs_ending=2)
    result = torchrun("ddp", listener.port, tmp_path / "ref.json")
    events = listener.wait().events()
    assert result["sharded"] == 0
    for rank in (0, 1):
        mine = [e for e in events if e.get("rank") == rank]
        assert len(of_kind(mine, "run_end")) == 1
        for step, ref in enumerate(result["refs"]):
            # DDP averages gradients: every rank holds the same full gradient.
            got = {e["layer"]: value(e["value"]) for e in of_kind(mine, "grad_norm", step=step)}
            assert set(got) == set(ref["layers"])
            for name, r in ref["layers"].items():
                assert close(got[name], r, rel=1e-5), (rank, step, name)
    assert all("rank" in e for e in events if e["kind"] in ("grad_norm", "loss"))


def test_fsdp2_shards_add_up_to_the_true_norms(listen, tmp_path):
    torch = need("torch")
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError as e:
        pytest.fail(f"this torch has no FSDP2: {e}")
    listener = listen(runs_ending=2)
    result = torchrun("fsdp", listener.port, tmp_path / "ref.json")
    events = listener.wait().events()
    assert result["sharded"] == 2, result
    combined = [e for e in events if e["kind"] in ("grad_norm", "total_norm", "loss")]
    assert combined and all("rank" not in e for e in combined)
    for step, ref in enumerate(result["refs"]):
        got = {e["layer"]: value(e["value"]) for e in of_kind(events, "grad_norm", step=step)}
        assert set(got) == set(ref["layers"]) == {"0", "2", "4"}
        for name, r in ref["layers"].items():
            assert close(got[name], r, rel=1e-5), (step, name, got[name], r)
        (total,) = of_kind(events, "total_norm", step=step)
        assert close(value(total["value"]), ref["total"], rel=1e-5)
        (loss,) = of_kind(events, "loss", step=step)
        assert close(value(loss["value"]), ref["loss"], rel=1e-5)
    assert listener.accounting()["bad"] == 0
    assert torch.distributed.is_available()


def test_ddp_ranks_stop_at_the_same_step_when_the_stop_reaches_them_apart(tmp_path):
    need("torch")
    from sonograd.controls import DISTRIBUTED_LEAD_STEPS

    out = tmp_path / "stop.json"
    # A rank that stopped alone would leave the other in all-reduce: torchrun would hang.
    torchrun("ddp-stop", 0, out, timeout=240)
    stopped = [json.loads((tmp_path / f"stop.json.{r}").read_text())["stopped"] for r in (0, 1)]
    assert stopped == [10 + DISTRIBUTED_LEAD_STEPS] * 2, stopped
