"""The examples next to the package run against the real listener."""

import os
import subprocess
import sys

from conftest import CLIENT, need, of_kind


def run_example(script, listener, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLIENT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(CLIENT / script), "--port", str(listener.port),
                           *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return listener.wait().events()


def test_the_plain_example(listen):
    need("torch")
    events = run_example("example.py", listen(runs_ending=1), "--steps", "30", "--run", "ex")
    assert len(of_kind(events, "grad_norm")) == 90
    assert len(of_kind(events, "loss")) == len(of_kind(events, "total_norm")) == 30
    assert len(of_kind(events, "eval")) == 1 and len(of_kind(events, "run_end")) == 1


def test_the_lightning_example(listen):
    need("lightning")
    events = run_example("example_lightning.py", listen(runs_ending=1), "--steps", "20")
    assert sorted(e["step"] for e in of_kind(events, "loss")) == list(range(20))
    assert {e["layer"] for e in of_kind(events, "grad_norm")} == {"net.0", "net.2", "net.4"}
    assert of_kind(events, "run_start")[0]["optimizer"] == "sgd"
