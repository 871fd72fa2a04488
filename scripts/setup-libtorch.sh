#!/usr/bin/env bash
# Fetches libtorch 2.13.0 (what tch 0.26 expects) from PyPI's pinned wheels into
# ./libtorch (git-ignored), following shared/recipes/libtorch.md's small route.
# A user who already set LIBTORCH or LIBTORCH_USE_PYTORCH keeps theirs.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/libtorch"
version="2.13.0"

if [ -n "${LIBTORCH:-}" ] || [ -n "${LIBTORCH_USE_PYTORCH:-}" ]; then
  echo "setup-libtorch: using your LIBTORCH / LIBTORCH_USE_PYTORCH; nothing to fetch"
  exit 0
fi
if [ -f "$dest/build-version" ] && [ "$(cat "$dest/build-version")" = "$version" ] \
   && [ -f "$dest/lib/libtorch_cpu.so" ]; then
  exit 0
fi

echo "setup-libtorch: fetching libtorch $version from PyPI wheels into $dest (about 490 MB)"
python3 -m pip --version >/dev/null 2>&1 || { echo "setup-libtorch: python3 with pip is required" >&2; exit 1; }
dl="$(mktemp -d)"
trap 'rm -rf "$dl"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dl" \
  "torch==$version" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85

tmp="$dest.partial"
rm -rf "$tmp"
mkdir -p "$tmp/lib" "$tmp/include"
python3 - "$dl" "$tmp" <<'PY'
import glob, os, shutil, sys, zipfile
dl, out = sys.argv[1], sys.argv[2]
torch_libs = {"libtorch_cpu.so", "libc10.so", "libtorch.so", "libgomp.so.1"}
cuda_libs = {"libcudart.so.13", "libcupti.so.13"}
for wheel in glob.glob(os.path.join(dl, "*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            base = os.path.basename(name)
            if name.startswith("torch/include/") and not name.endswith("/"):
                target = os.path.join(out, "include", name[len("torch/include/"):])
            elif name.startswith("torch/lib/") and base in torch_libs:
                target = os.path.join(out, "lib", base)
            elif base in cuda_libs:
                target = os.path.join(out, "lib", base)
            else:
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
for f in libtorch_cpu.so libc10.so libtorch.so libgomp.so.1 libcudart.so.13 libcupti.so.13; do
  [ -f "$tmp/lib/$f" ] || { echo "setup-libtorch: $f missing from the wheels" >&2; exit 1; }
done
echo "$version" > "$tmp/build-version"
rm -rf "$dest"
mv "$tmp" "$dest"
echo "setup-libtorch: done ($(du -sh "$dest" | cut -f1))"
