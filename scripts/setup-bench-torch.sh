#!/usr/bin/env bash
# Installs PyTorch + transformers for the CPU peer of bench/bert.sh (bench/bert_peer.py), and
# FastAPI + uvicorn (with uvloop and httptools, `uvicorn[standard]`) for the serving peer of
# bench/serve_bert.sh (bench/bert_server.py), into a virtual environment of its own,
# idempotently. Bench-only: CI and the tests never need it.
#
# usage: scripts/setup-bench-torch.sh     (env: TAXON_TORCH_VENV=~/.cache/taxon/venv-torch,
#                                          TORCH_FULL=0, TAXON_PYTHON=python3)
#
# PyPI's Linux x86_64 torch wheel (539 MB, 1.2 GB unpacked) is a CUDA build: pip would also pull
# about 20 nvidia-*, cuda-* and triton wheels, several GB, for a GPU these benches never use.
# By default (TORCH_FULL=0) this script installs the torch wheel with --no-deps, its pure-Python
# requirements without the nvidia-*/cuda-*/triton ones, and transformers (about 1.7 GB in all).
# torch's shared libraries still name the CUDA libraries (libcudart, libcublas, libcudnn, ...) as
# load-time dependencies, so `import torch` would fail; the script compiles a CPU-only stand-in
# for each missing one (with `cc`): a tiny shared library with the same soname, symbol versions
# and symbols, every function returning an error code (100, "no device"), and puts them in
# torch/lib (listed in torch/lib/CPU_STANDINS.txt). torch then reports cuda.is_available() False
# and runs its own CPU kernels (oneDNN, its GEMMs, fbgemm for int8) exactly as a full install does.
# TORCH_FULL=1 runs a plain `pip install torch transformers` instead, for machines with the disk.
set -euo pipefail

VENV="${TAXON_TORCH_VENV:-$HOME/.cache/taxon/venv-torch}"
PY="${TAXON_PYTHON:-python3}"
TORCH_FULL="${TORCH_FULL:-0}"
NEED_MB=2500

say() { echo "setup-bench-torch: $*"; }

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -W ignore -c "import torch, transformers" 2>/dev/null; then
  say "$("$VENV/bin/python" -W ignore -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)') already in $VENV"
  if ! "$VENV/bin/python" -c "import fastapi, uvicorn" 2>/dev/null; then
    say "installing fastapi and uvicorn[standard] for bench/bert_server.py"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir fastapi 'uvicorn[standard]'
  fi
  exit 0
fi

free_mb=$(df -Pm "$(dirname "$VENV")" 2>/dev/null | awk 'NR == 2 {print $4}') || free_mb=""
if [ "$TORCH_FULL" != 1 ] && [ -n "$free_mb" ] && [ "$free_mb" -lt "$NEED_MB" ]; then
  say "only ${free_mb} MB free under $(dirname "$VENV"); the CPU install needs about ${NEED_MB} MB" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir)
# pip warns that torch's nvidia-*/cuda-*/triton requirements are missing: that is the point here.
pip_cpu() {
  "${PIP[@]}" "$@" 2>&1 | { grep -vE "dependency resolver does not|which is not installed|^torch .* requires " || true; }
}

if [ "$TORCH_FULL" = 1 ]; then
  say "installing torch and transformers with all their dependencies (CUDA wheels included, several GB)"
  "${PIP[@]}" torch transformers fastapi 'uvicorn[standard]'
  "$VENV/bin/python" -W ignore -c "import torch, transformers; print('setup-bench-torch: torch', torch.__version__, 'transformers', transformers.__version__)"
  exit 0
fi

if ! "$VENV/bin/python" -c "import importlib.metadata as m; m.version('torch')" 2>/dev/null; then
  say "installing torch without its CUDA dependencies (--no-deps; the wheel is about 540 MB)"
  pip_cpu --no-deps torch
fi
# torch's own requirements, less the GPU ones.
mapfile -t REQS < <("$VENV/bin/python" - <<'PY'
import importlib.metadata as m, re
for req in m.requires("torch") or []:
    spec, _, marker = req.partition(";")
    name = re.split(r"[<>=!~\[ ]", spec.strip(), maxsplit=1)[0].lower()
    if "extra ==" in marker or name.startswith(("nvidia-", "cuda-", "triton")):
        continue
    print(spec.strip().replace(" ", ""))
PY
)
say "installing torch's CPU requirements: ${REQS[*]}"
pip_cpu "${REQS[@]}"
say "installing transformers, fastapi and uvicorn[standard]"
pip_cpu transformers fastapi 'uvicorn[standard]'

LIB=$("$VENV/bin/python" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('torch').origin), 'lib'))")
say "compiling CPU-only stand-ins for the CUDA libraries torch links into $LIB"
"$VENV/bin/python" - "$LIB" <<'PY'
"""Builds a stand-in shared library for every library that torch's .so files need but that
neither torch/lib nor the system provides, with the symbols and symbol versions torch uses."""
import os, re, subprocess, sys, tempfile

lib = sys.argv[1]
sos = sorted(os.path.join(lib, f) for f in os.listdir(lib) if ".so" in f)
pkg = os.path.dirname(lib)
sos += sorted(os.path.join(pkg, f) for f in os.listdir(pkg) if f.startswith("_C") and f.endswith(".so"))
system = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout


def standin(name):
    """Whether torch/lib/NAME is a stand-in an earlier run of this script wrote."""
    path = os.path.join(lib, name)
    if not os.path.isfile(path) or os.path.getsize(path) > 1 << 20:
        return False
    return b"is a CPU-only stand-in" in open(path, "rb").read()


present = {f for f in os.listdir(lib) if not standin(f)} | set(re.findall(r"^\s*(\S+) \(", system, re.M))

needed, defined, undefined, version_file = set(), set(), {}, {}
for so in sos:
    dyn = subprocess.run(["readelf", "-d", "-W", so], capture_output=True, text=True, check=True).stdout
    needed |= set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn))
    ver = subprocess.run(["readelf", "-V", "-W", so], capture_output=True, text=True, check=True).stdout
    current = None
    for line in ver.splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and current:
            version_file[m.group(1)] = current
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", so], capture_output=True, text=True, check=True).stdout
    for line in syms.splitlines():
        p = line.split()
        if len(p) < 8 or not p[0].endswith(":"):
            continue
        kind, ndx = p[3], p[6]
        name, _, version = p[7].partition("@")
        version = version.lstrip("@")
        if ndx == "UND":
            undefined.setdefault(name, (kind, version))
        else:
            defined.add(name)
missing = sorted(n for n in needed if n not in present)
if not missing:
    print("setup-bench-torch: every library torch links is present; no stand-ins needed")
    sys.exit(0)

# Symbols per missing library: versioned references name their file; unversioned ones that no
# torch library defines go by prefix (the CUDA driver API to the runtime's stand-in).
prefixes = [(r"nccl", "libnccl"), (r"cusparseLt", "libcusparseLt"), (r"cuFile", "libcufile"),
            (r"nvshmem", "libnvshmem_host"), (r"cu[A-Z]", "libcuda"), (r"cu", "libcudart")]
per_lib = {n: {} for n in missing}
nodes = {n: None for n in missing}
for name, (kind, version) in undefined.items():
    target = version_file.get(version) if version else None
    if target in per_lib:
        per_lib[target][name] = kind
        nodes[target] = version
    elif not version and name not in defined and not name.startswith(("_Z", "Py", "_Py", "_ITM", "__")):
        target = next((n for p, s in prefixes if re.match(p, name)
                       for n in missing if n.startswith(s + ".so")), None)
        if target:
            per_lib[target][name] = kind

with tempfile.TemporaryDirectory() as tmp:
    for soname in missing:
        syms = per_lib[soname]
        c = [f"/* CPU-only stand-in for {soname}: torch links it, a CPU run never calls it. */",
             f'static const char msg[] = "{soname} is a CPU-only stand-in: no GPU library here";']
        for name, kind in sorted(syms.items()):
            if kind in ("OBJECT", "NOTYPE", "TLS"):
                c.append(f"char {name}[256];")
            elif re.search(r"String|ErrorName", name):
                c.append(f"const char *{name}(void) {{ return msg; }}")
            else:
                c.append(f"int {name}(void) {{ return 100; }}")
        src, vmap = os.path.join(tmp, "stub.c"), os.path.join(tmp, "stub.map")
        open(src, "w").write("\n".join(c) + "\n")
        node = nodes[soname] or soname
        exports = "".join(f"  {s};\n" for s in syms) or "  msg;\n"
        open(vmap, "w").write(node + " {\n global:\n" + exports + " local: *;\n};\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", os.path.join(lib, soname),
                        f"-Wl,-soname,{soname}", f"-Wl,--version-script={vmap}", src], check=True)
        print(f"setup-bench-torch:   {soname}: {len(syms)} symbols")
with open(os.path.join(lib, "CPU_STANDINS.txt"), "w") as f:
    f.write("CPU-only stand-ins written by scripts/setup-bench-torch.sh (not NVIDIA's libraries):\n")
    f.write("".join(n + "\n" for n in missing))
PY

"$VENV/bin/python" -W ignore -c "
import torch, transformers
print('setup-bench-torch: torch', torch.__version__, 'mkldnn', torch.backends.mkldnn.is_available(),
      'cpu', torch.backends.cpu.get_cpu_capability(), 'cuda', torch.cuda.is_available(),
      '| transformers', transformers.__version__)"
say "$(du -sh "$VENV" | cut -f1) in $VENV"
