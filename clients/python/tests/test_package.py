"""The package itself: what it exports, that importing it needs nothing beyond the standard
library, its version, and the wire formats read back."""

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

import sonograd
from conftest import ROOT


def test_importing_needs_only_the_standard_library():
    code = ("import sys, sonograd; "
            "heavy = [m for m in ('torch', 'lightning', 'transformers', 'numpy') "
            "if m in sys.modules]; print(heavy); assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr + out.stdout


def test_the_version_is_the_crates():
    cargo = (ROOT / "Cargo.toml").read_text()
    crate = re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    pyproject = (pathlib.Path(sonograd.__file__).parents[1] / "pyproject.toml")
    assert sonograd.__version__ == crate
    if pyproject.exists():  # a source checkout
        assert re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M).group(1) \
            == crate


def test_it_exports_the_documented_names():
    for name in ("monitor", "LightningCallback", "SonogradCallback", "TransformersCallback",
                 "GradientSonifier", "UdpSender", "event_line", "Layout"):
        assert name in sonograd.__all__, name
    assert callable(sonograd.monitor)


def test_a_step_packs_and_reads_back_and_long_layouts_split():
    names = [f"block.{i}.attention" for i in range(500)]
    values = [None if i % 7 == 0 else i * 0.25 for i in range(500)]
    values[3] = math.nan
    layout = sonograd.Layout(names, run="exp-ü", max_bytes=2048)
    assert len(layout.parts) > 5
    datagrams = layout.pack(12, values, epoch=3, rank=2, loss=1.5, lr=0.01, total=9.0)
    assert all(len(d) <= 2048 for d in datagrams)
    seen = {}
    for n, d in enumerate(datagrams):
        r = sonograd.unpack_step(d)
        assert (r["step"], r["epoch"], r["rank"], r["run"]) == (12, 3, 2, "exp-ü")
        assert (r["part"], r["parts"]) == (n, len(datagrams))
        # Loss, lr and total travel once, in the first part.
        assert (r["loss"], r["lr"], r["total"]) == ((1.5, 0.01, 9.0) if n == 0 else (None,) * 3)
        for index, name, v in r["layers"]:
            seen[index] = (name, v)
    assert len(seen) == 500
    for i in range(500):
        name, v = seen[i]
        assert name == names[i]
        if i == 3:
            assert math.isnan(v)
        else:
            assert v == values[i]


def test_event_lines_are_json_with_non_finite_values_as_strings():
    line = sonograd.event_line("loss", 4, value=float("inf"), run="a", rank=1)
    assert '"value":"Infinity"' in line and '"rank":1' in line
    d = sonograd.pack_datagrams(["a" * 10] * 5, max_bytes=25)
    assert d == [b"a" * 10 + b"\n" + b"a" * 10] * 2 + [b"a" * 10]
    assert sonograd.layer_of("encoder.layers.0.weight") == "encoder.layers.0"
    assert sonograd.layer_of("_orig_mod.fc1.weight") == "fc1"
    assert sonograd.layer_of("bias") == "bias"


def test_the_native_path_is_built_at_install():
    # pip install builds sonograd/_native.c beside the package (setup.py), so the first
    # training step does not wait for a compiler and no cache directory is needed.
    installed = pathlib.Path(sonograd.__file__).parent
    if (installed / "_native.c").resolve() == (ROOT / "clients/python/sonograd/_native.c"):
        pytest.skip("run from the source tree, not an installed package")
    built = sorted(p.name for p in installed.glob("_native*.so"))
    assert built, f"no compiled _native module in {installed}"
    code = ("import os, sonograd._build as b; m = b.native(); "
            "print(m.__file__); assert os.path.dirname(m.__file__) == "
            "os.path.dirname(b.__file__), m.__file__")
    # A cache where nothing can be built: a build on first use cannot stand in for it.
    env = dict(os.environ, SONOGRAD_CACHE="/nonexistent/sonograd-cache")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", env=env)
    assert out.returncode == 0, out.stderr + out.stdout
