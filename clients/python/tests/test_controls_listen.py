"""Controls through the real `sonograd listen`: an OSC message to listen's control port
reaches a Python training loop, which changes its learning rate, stops stepping while paused
and stops cleanly; listen records every control as an event."""

import socket
import struct
import threading
import time

import sonograd
from conftest import need, of_kind

MAPPING = """
[outputs.mon]
kind = "monitor"
[[route]]
output = "mon"
match = { metric = "loss" }
to = { param = "pitch" }
[[control]]
target = "lr_scale"
[[control]]
target = "pause"
[[control]]
target = "stop"
"""


def osc(address, *floats):
    """One OSC message with float arguments."""
    def pad(b):
        return b + b"\0" * (4 - len(b) % 4)
    tags = "," + "f" * len(floats)
    return pad(address.encode()) + pad(tags.encode()) + b"".join(struct.pack(">f", f) for f in floats)


def wait_for(cond, timeout=20):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_listen_forwards_osc_controls_to_a_python_run(listen, tmp_path):
    torch = need("torch")
    mapping = tmp_path / "m.toml"
    mapping.write_text(MAPPING)
    listener = listen(args=("--mapping", str(mapping), "--control-osc", "127.0.0.1:0"))
    wait_for(lambda: any(l.startswith("controls: OSC on ") for l in listener.lines))
    line = next(l for l in listener.lines if l.startswith("controls: OSC on "))
    host, port = line.rsplit(" ", 1)[1].rsplit(":", 1)
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=listener.port, optimizer=opt)
    state = {"steps": 0, "stop": None, "lrs": []}

    def loop():
        try:
            while True:
                loss = model(torch.randn(5, 4)).pow(2).mean()
                loss.backward()
                s.step(loss=loss, optimizer=opt)
                opt.step()
                opt.zero_grad()
                state["lrs"].append(opt.param_groups[0]["lr"])
                state["steps"] += 1
                time.sleep(0.005)
        except sonograd.StopTraining as e:
            state["stop"] = e

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    # listen learns where the run sends from with its first datagrams.
    wait_for(lambda: state["steps"] >= 20)
    ctl.sendto(osc("/sonograd/control/lr_scale", 0.5), (host, int(port)))
    wait_for(lambda: opt.param_groups[0]["lr"] == 0.05)
    ctl.sendto(osc("/sonograd/control/pause", 1.0), (host, int(port)))
    wait_for(lambda: s.paused)
    held = state["steps"]
    time.sleep(0.5)
    assert state["steps"] == held, "the run went on stepping while paused"
    ctl.sendto(osc("/sonograd/control/pause", 0.0), (host, int(port)))
    wait_for(lambda: state["steps"] >= held + 5)
    ctl.sendto(osc("/sonograd/control/stop", 1.0), (host, int(port)))
    t.join(20)
    assert not t.is_alive() and isinstance(state["stop"], sonograd.StopTraining)
    s.close()
    wait_for(lambda: of_kind(listener.events(), "run_end"))
    listener.stop()
    events = listener.events()
    controls = [(e["target"], e["value"]) for e in of_kind(events, "control")]
    assert controls == [("lr_scale", 0.5), ("pause", 1.0), ("pause", 0.0), ("stop", 1.0)]
    assert of_kind(events, "run_end")[0]["reason"] == "stopped"
    # The lr events the run sent change from 0.1 to 0.05 once, and stay there.
    lrs = [e["value"] for e in of_kind(events, "lr")]
    changes = [b for a, b in zip(lrs, lrs[1:]) if a != b]
    assert lrs[0] == 0.1 and changes == [0.05], changes
    assert any("controls:" in l and "4 applied" in l for l in listener.lines), listener.lines
