"""The peer for `sonograd render`'s whole-process speed: a plain numpy script that renders one
sine tone per step (pitch from the step's total gradient norm, log scale) to a 16-bit WAV.

    python3 numpy_render.py make STEPS REC.jsonl   # write a synthetic 4-layer recording
    python3 numpy_render.py render REC.jsonl OUT.wav [STEP_MS] [RATE]
"""
import json
import math
import sys
import wave


def make(steps, path):
    with open(path, "w") as f:
        f.write(json.dumps({"v": 1, "step": 0, "kind": "run_start", "model": "mlp",
                            "layers": ["fc1", "fc2", "fc3", "fc4"]}) + "\n")
        for s in range(steps):
            total = 0.0
            for l in range(4):
                x = math.sin(s * 0.013 * (l + 1)) * 3.0 - l * 0.5
                v = 10.0 ** x
                total += v * v
                f.write(json.dumps({"v": 1, "step": s, "kind": "grad_norm", "layer": f"fc{l + 1}",
                                    "layer_index": l, "value": v}) + "\n")
            f.write(json.dumps({"v": 1, "step": s, "kind": "total_norm",
                                "value": math.sqrt(total)}) + "\n")
            f.write(json.dumps({"v": 1, "step": s, "kind": "loss",
                                "value": 2.3 * math.exp(-s / 3000.0)}) + "\n")
        f.write(json.dumps({"v": 1, "step": steps - 1, "kind": "run_end",
                            "reason": "completed"}) + "\n")


def render(rec, out, step_ms=50.0, rate=48000):
    import numpy as np

    norms = {}
    with open(rec) as f:
        for line in f:
            e = json.loads(line)
            if e.get("kind") == "total_norm":
                norms[e["step"]] = float(e["value"])
    steps = sorted(norms)
    n = int(rate * step_ms / 1000.0)
    t = np.arange(n) / rate
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        for s in steps:
            level = (math.log10(max(norms[s], 1e-3)) + 3.0) / 6.0
            hz = 220.0 * 2.0 ** (3.0 * min(max(level, 0.0), 1.0))
            tone = 0.3 * np.sin(2.0 * math.pi * hz * t)
            w.writeframes((tone * 32767.0).astype("<i2").tobytes())


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(int(sys.argv[2]), sys.argv[3])
    else:
        render(sys.argv[2], sys.argv[3], *(float(a) for a in sys.argv[4:5]),
               *(int(a) for a in sys.argv[5:6]))
