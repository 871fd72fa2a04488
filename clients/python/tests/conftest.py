"""Shared fixtures: the real `sonograd listen` (target/debug/sonograd, or $SONOGRAD_BIN),
started on a free port and recording what it receives."""

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
CLIENT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def sonograd_bin():
    path = os.environ.get("SONOGRAD_BIN") or str(ROOT / "target" / "debug" / "sonograd")
    if not os.access(path, os.X_OK):
        msg = f"{path} is missing: build it with `cargo build` or set SONOGRAD_BIN"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def need(module):
    """Imports ``module``, or skips (fails under CI) when it is not installed."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        if os.environ.get("CI") or os.environ.get("SONOGRAD_REQUIRE_TORCH") == "1":
            pytest.fail(f"{module} is required here but does not import: {e}")
        pytest.skip(f"{module} is not installed (scripts/setup-python.sh)")


class Listener:
    """A running `sonograd listen --udp 127.0.0.1:0 --record FILE`."""

    def __init__(self, record, runs_ending=None, args=(), port=0):
        cmd = [sonograd_bin(), "listen", "--udp", f"127.0.0.1:{port}", "--record", str(record),
               *args]
        if runs_ending is not None:
            cmd += ["--runs-ending", str(runs_ending)]
        env = dict(os.environ, SONOGRAD_NO_AUDIO="1")
        self.record = pathlib.Path(record)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines = []
        self._q = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        while self.port is None:
            line = self._q.get(timeout=30)
            if line is None:
                raise RuntimeError("listen exited: " + "\n".join(self.lines))
            if line.startswith("listening: udp-json "):
                self.port = int(line.rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def wait(self, timeout=60):
        """Waits for the listener to end by itself (``runs_ending``)."""
        self.proc.wait(timeout=timeout)
        # The process has ended, but its last stderr lines (the accounting) may still be on
        # their way to the reader thread: read up to end of file before anyone looks.
        self._reader.join(timeout=30)
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        return self

    def events(self):
        text = self.record.read_text() if self.record.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def accounting(self):
        for line in self.lines:
            if line.startswith("accounting: "):
                return {k: int(v) for k, v in (p.split("=") for p in line.split()[1:])}
        raise AssertionError("no accounting line: " + "\n".join(self.lines))


@pytest.fixture
def listen(tmp_path):
    """Starts listeners: ``listen(runs_ending=1)``; all are stopped at the end."""
    started = []

    def start(runs_ending=None, args=(), name="rec.jsonl", port=0):
        listener = Listener(tmp_path / name, runs_ending=runs_ending, args=args, port=port)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        if listener.proc.poll() is None:
            listener.stop()


def of_kind(events, kind, **match):
    return [e for e in events if e["kind"] == kind
            and all(e.get(k) == v for k, v in match.items())]


def value(x):
    return float(x) if not isinstance(x, str) else float(x.replace("Infinity", "inf"))
