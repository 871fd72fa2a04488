"""Control latency: from an OSC message arriving to its effect on the built-in trainer.

Runs `sonograd train --paced --step-ms STEP` with an lr_scale control on an OSC port, sends
N changes at random moments, and matches each with the `control` event the trainer wrote when
it applied the change (its `time` is when the step that uses it began). Prints p50, p99 and
max against the floor of one step plus 5 ms.

    cargo build --release && python3 benches/whole/control_latency.py [--step-ms 20] [--n 200]
"""

import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def osc(address, value):
    def pad(b):
        return b + b"\0" * (4 - len(b) % 4)
    return pad(address.encode()) + pad(b",f") + struct.pack(">f", value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--step-ms", type=float, default=20.0)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "sonograd"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    mapping = os.path.join(tmp, "m.toml")
    with open(mapping, "w") as f:
        f.write('[outputs.mon]\nkind = "monitor"\n[[route]]\noutput = "mon"\n'
                'match = { metric = "loss" }\nto = { param = "pitch" }\n'
                '[[control]]\ntarget = "lr_scale"\nrange = [0.0, 1000.0]\n')
    rec = os.path.join(tmp, "run.jsonl")
    steps = int((args.n * 0.1 + 5) * 1000 / args.step_ms)
    proc = subprocess.Popen(
        [args.bin, "train", "--paced", "--step-ms", str(args.step_ms), "--steps", str(steps),
         "--data", "spirals", "--hidden", "16", "--mapping", mapping, "--record", rec,
         "--control-osc", "127.0.0.1:0", "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, SONOGRAD_NO_AUDIO="1"))
    addr = None
    for line in proc.stderr:
        if line.startswith("controls: OSC on "):
            host, port = line.split()[-1].rsplit(":", 1)
            addr = (host, int(port))
            break
    if addr is None:
        sys.exit("train did not open its control port")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    time.sleep(1.0)
    sent = {}
    for i in range(args.n):
        value = float(i + 2)  # distinct, exact in f32, never the starting 1.0
        sent[value] = time.time()
        sock.sendto(osc("/sonograd/control/lr_scale", value), addr)
        time.sleep(random.uniform(0.03, 0.12))
    time.sleep(0.5)
    proc.terminate()
    proc.wait(timeout=60)
    lat = []
    seen = set()
    with open(rec) as f:
        for line in f:
            e = json.loads(line)
            if e["kind"] == "control" and e["value"] in sent:
                seen.add(e["value"])
                lat.append((e["time"] - sent[e["value"]]) * 1000)
    if len(lat) != args.n:
        missing = sorted(set(sent) - seen)
        sys.exit(f"only {len(lat)} of {args.n} controls were applied; missing {missing}")
    lat.sort()
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    floor = args.step_ms + 5
    print(f"control -> trainer, {args.n} changes at --step-ms {args.step_ms}: "
          f"p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, max {lat[-1]:.1f} ms "
          f"(floor: one step + 5 ms = {floor:.0f} ms) {'ok' if p(0.99) <= floor else 'OVER'}")


if __name__ == "__main__":
    main()
