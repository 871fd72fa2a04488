"""The native CPU path (``_native.c``): imported when built at install time, else compiled
once with the system's C compiler into a per-user cache, else ``None`` (the client then
measures in Python). Importing this module needs only the standard library."""

import hashlib
import importlib.machinery
import importlib.util
import os
import pathlib
import shlex
import subprocess
import sys
import sysconfig
import tempfile

SOURCE = pathlib.Path(__file__).with_name("_native.c")
_loaded = None


def _cache_dir():
    root = os.environ.get("SONOGRAD_CACHE") or os.environ.get("XDG_CACHE_HOME") \
        or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(root) / "sonograd" if not os.environ.get("SONOGRAD_CACHE") \
        else pathlib.Path(root)


def _compile(target):
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    include = sysconfig.get_paths()["include"]
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    try:
        cmd = [*cc, "-O3", "-shared", "-fPIC", "-pthread", "-I", include, str(SOURCE),
               "-o", tmp, "-lm"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()[-400:]}")
        os.replace(tmp, target)  # atomic: another process may build the same file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path):
    loader = importlib.machinery.ExtensionFileLoader("sonograd._native", str(path))
    spec = importlib.util.spec_from_file_location("sonograd._native", str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def native():
    """The ``_native`` module; raises when it cannot be had (no compiler, not Linux...)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if os.environ.get("SONOGRAD_NO_NATIVE"):
        raise RuntimeError("SONOGRAD_NO_NATIVE is set")
    try:
        from . import _native  # built at install time

        _loaded = _native
        return _loaded
    except ImportError:
        pass
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the native path is built on Linux only")
    digest = hashlib.sha256(SOURCE.read_bytes() + sys.version.encode()).hexdigest()[:16]
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    target = _cache_dir() / f"_native-{digest}{suffix}"
    if not target.exists():
        _compile(target)
    _loaded = _load(target)
    return _loaded
