#!/usr/bin/env bash
# Builds the container image with podman (no Docker engine needed) and smoke-tests it: health
# through the image's own HEALTHCHECK, a Classify call, the metrics endpoint, the CPU quota seen
# by the server, and SIGTERM -> clean exit 0 within the drain timeout. Times every step.
#
# The Debian base image is made once per machine with debootstrap from the mirror apt uses and
# kept as localhost/localdebian:bookworm; the build bind-mounts the host's ccache, so after a
# host Release build (tools/test.sh) the compile is mostly cache hits.
#
# Usage: tools/container_test.sh            (root, or sudo for debootstrap; tools/setup.sh first)
# Environment: CCACHE_DIR (host ccache, default ~/.cache/visionserve-ccache), JOBS,
#   VISIONSERVE_BASE_IMAGE (default localhost/localdebian:bookworm; built when missing),
#   VISIONSERVE_IMAGE (tag to build, default localhost/visionserve:ci).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BASE_IMAGE=${VISIONSERVE_BASE_IMAGE:-localhost/localdebian:bookworm}
IMAGE=${VISIONSERVE_IMAGE:-localhost/visionserve:ci}
BUILD_IMAGE=${IMAGE%:*}-build:${IMAGE##*:}  # the tagged build stage keeps its layers cached
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/visionserve-ccache}
JOBS=${JOBS:-$(nproc)}
DRAIN_S=10
STATE=${XDG_CACHE_HOME:-$HOME/.cache}/visionserve-containers
NAME=visionserve-ci-$$
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

TIMINGS=()
STEP=""
STEP_T0=0
T_START=$(date +%s.%N)
begin() { STEP=$1; STEP_T0=$(date +%s.%N); echo "container_test: == $STEP"; }
end() {
  local dt
  dt=$(awk -v a="$STEP_T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  TIMINGS+=("$(printf '  %-34s %7s s' "$STEP" "$dt")")
  echo "container_test: $STEP: ${dt} s"
}
fail() { echo "container_test: FAIL: $*" >&2; exit 1; }

TMP=$(mktemp -d)
cleanup() {
  local rc=$?
  if podman container exists "$NAME" 2>/dev/null; then
    if [ "$rc" -ne 0 ]; then echo "--- container log:" >&2; podman logs "$NAME" >&2 || true; fi
    podman rm -f "$NAME" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
  echo "container_test: timings"
  printf '%s\n' "${TIMINGS[@]}"
  printf '  %-34s %7s s\n' "total" \
    "$(awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
  [ "$rc" -eq 0 ] && echo "container_test: PASS" || echo "container_test: FAILED (exit $rc)" >&2
}
trap cleanup EXIT

for tool in podman runc debootstrap /usr/bin/python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (tools/setup.sh installs it)"
done

# No systemd here to schedule HEALTHCHECK timers (podman would log errors on every run);
# `podman healthcheck run` below runs the image's check explicitly.
export DISABLE_HC_SYSTEMD=true

# podman's defaults fail on these machines: crun on hybrid cgroups, and default ulimits above
# the host's hard limits. runc and lower ulimits work.
mkdir -p "$STATE"
export CONTAINERS_CONF="$STATE/containers.conf"
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
EOF

# ---- base image ------------------------------------------------------------------------------
begin "base image"
(
  flock 9  # one debootstrap per machine, even with concurrent CI runs
  if podman image exists "$BASE_IMAGE"; then
    echo "container_test: $BASE_IMAGE exists, reused"
    exit 0
  fi
  # The mirrors apt already uses (e.g. http://deb.debian.org/debian and .../debian-security).
  mirror=$(apt-cache policy | awk '$3 ~ /^bookworm\/main$/ { print $2; exit }')
  security=$(apt-cache policy | awk '$3 ~ /^bookworm-security\/main$/ { print $2; exit }')
  [ -n "$mirror" ] || fail "no bookworm/main source in apt's sources"
  security=${security:-http://deb.debian.org/debian-security}
  echo "container_test: debootstrap bookworm from $mirror"
  rootfs="$TMP/rootfs"
  $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$TMP/debootstrap.log" 2>&1 ||
    { tail -20 "$TMP/debootstrap.log" >&2; fail "debootstrap"; }
  # The suites of the official debian:bookworm image, so the build stage gets the same package
  # versions as the host (and the host's ccache entries match).
  $SUDO rm -f "$rootfs/etc/apt/sources.list"
  $SUDO tee "$rootfs/etc/apt/sources.list.d/debian.sources" >/dev/null <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  $SUDO tar -C "$rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  $SUDO rm -rf "$rootfs"
) 9>"$STATE/base-image.lock"
end

# ---- image -----------------------------------------------------------------------------------
REVISION=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_ARGS=(--pull=never --layers --format docker --build-arg "BASE=$BASE_IMAGE"
  --build-arg "JOBS=$JOBS" -v "$CCACHE_DIR:/ccache")
mkdir -p "$CCACHE_DIR"

begin "image build stage (compile + unit tests)"
podman build "${BUILD_ARGS[@]}" --target build -t "$BUILD_IMAGE" -f Dockerfile . \
  >"$STATE/build.log" 2>&1 || {
  grep -E -A25 '^\[ +FAILED +\]|^The following tests FAILED|error:' "$STATE/build.log" | head -120 >&2
  tail -5 "$STATE/build.log" >&2
  fail "podman build (build stage); full log: $STATE/build.log"
}
grep -E '^ *(Hits|Misses|[0-9]+% tests passed|Total Test time)' "$STATE/build.log" || true
end

begin "image runtime stage"
# --label as well as the build arg: buildah reuses a cached LABEL layer when only an ARG changed,
# which left the previous commit's revision on the image.
podman build "${BUILD_ARGS[@]}" --build-arg "REVISION=$REVISION" \
  --label "org.opencontainers.image.revision=$REVISION" -t "$IMAGE" -f Dockerfile . \
  >"$STATE/runtime.log" 2>&1 || {
  tail -40 "$STATE/runtime.log" >&2
  fail "podman build (runtime stage); full log: $STATE/runtime.log"
}
# Earlier builds' layers (other commits) are untagged now; drop them, the tagged ones stay.
podman image prune -f --filter label=io.visionserve.stage >/dev/null || true
echo "container_test: $IMAGE $(podman image inspect --format '{{.Size}}' "$IMAGE" |
  awk '{ printf "%.0f MB", $1 / 1e6 }')"
end

begin "image metadata"
inspect() { podman image inspect --format "$1" "$IMAGE"; }
[ "$(inspect '{{.Config.User}}')" = "10001:10001" ] || fail "image user is not 10001:10001"
for port in 8500/tcp 9500/tcp; do
  grep -qw "$port" <<<"$(inspect '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}')" ||
    fail "port $port not exposed"
done
[ "$(inspect '{{.Config.StopSignal}}')" = "SIGTERM" ] || fail "STOPSIGNAL is not SIGTERM"
grep -q 'visionctl' <<<"$(inspect '{{json .Config.Healthcheck}}')" || fail "no visionctl HEALTHCHECK"
[ "$(inspect '{{index .Config.Labels "org.opencontainers.image.revision"}}')" = "$REVISION" ] ||
  fail "revision label"
end

# ---- run -------------------------------------------------------------------------------------
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
MPORT=$(free_port)
/usr/bin/python3 - "$TMP/cat.jpg" <<'EOF'
import sys
from PIL import Image
Image.radial_gradient("L").convert("RGB").resize((320, 240)).save(sys.argv[1], quality=90)
EOF
chmod 755 "$TMP" && chmod 644 "$TMP/cat.jpg"

begin "start until SERVING"
# --cpus 1: the server must size its pool from the cgroup quota, not the host's CPUs.
# --read-only without tmpfs mounts: like readOnlyRootFilesystem in the Kubernetes Deployment.
podman run -d --name "$NAME" --network host --cpus 1 --memory 2g \
  --read-only --read-only-tmpfs=false -e "VISIONSERVE_PORT=$PORT" -v "$TMP:/data:ro" "$IMAGE" \
  --listen "127.0.0.1:$PORT" --metrics-listen "127.0.0.1:$MPORT" --drain-timeout-s "$DRAIN_S" \
  >/dev/null
for _ in $(seq 1 120); do
  if podman exec "$NAME" visionctl --server "127.0.0.1:$PORT" --timeout-ms 1000 health \
    >/dev/null 2>&1; then break; fi
  [ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || fail "container exited"
  sleep 0.5
done
[ "$(podman exec "$NAME" visionctl --server "127.0.0.1:$PORT" health)" = SERVING ] ||
  fail "not SERVING within 60 s"
end

begin "healthcheck, user, thread count"
# The image's own HEALTHCHECK command (podman runs it once here; no systemd timer needed).
podman healthcheck run "$NAME" || fail "the image's HEALTHCHECK reports unhealthy"
[ "$(podman exec "$NAME" id -u)" = 10001 ] || fail "the server does not run as uid 10001"
logs=$(podman logs "$NAME" 2>&1)
grep -q '(.*, 1 threads)' <<<"$logs" ||
  fail "with --cpus 1 the server should use 1 thread: $(head -1 <<<"$logs")"
end

begin "classify"
podman exec "$NAME" visionctl --server "127.0.0.1:$PORT" classify /data/cat.jpg --top-k 3 \
  | tee "$TMP/classify.txt"
grep -q 'regnet_y_400mf' "$TMP/classify.txt" || fail "classify did not answer from the default model"
end

begin "metrics"
/usr/bin/python3 - "$MPORT" <<'EOF'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
ok = [l for l in text.splitlines() if l.startswith("visionserve_requests_total{") and
      'code="OK"' in l and 'rpc="Classify"' in l and 'model="regnet_y_400mf"' in l]
assert len(ok) == 1 and float(ok[0].split()[-1]) == 1, "the Classify call is not counted:\n" + text
for name in ("visionserve_queue_depth_images", "visionserve_build_info", "visionserve_model_state"):
    assert re.search(rf"^{name}[{{ ]", text, re.M), name + " missing"
print(f"container_test: {len(text.splitlines())} metric lines; {ok[0]}")
EOF
end

# stop_and_check MAX_S: podman stop (the image's STOPSIGNAL, SIGKILL after 60 s), then the exit
# code must be 0, the server must have drained, and it must have taken less than MAX_S seconds.
stop_and_check() {
  local t0 stop_s code logs
  t0=$(date +%s.%N)
  podman stop -t 60 "$NAME" >/dev/null
  stop_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  code=$(podman inspect --format '{{.State.ExitCode}}' "$NAME")
  logs=$(podman logs "$NAME" 2>&1)
  tail -3 <<<"$logs"
  [ "$code" = 0 ] || fail "exit code $code after SIGTERM (${stop_s} s)"
  grep -q 'SIGTERM: draining' <<<"$logs" || fail "the server did not see SIGTERM"
  grep -q '^visionserve: stopped' <<<"$logs" || fail "the server did not stop cleanly"
  awk -v s="$stop_s" -v m="$1" 'BEGIN { exit !(s < m) }' ||
    fail "stopping took ${stop_s} s, more than $1 s"
  echo "container_test: exit 0 after ${stop_s} s"
  podman rm "$NAME" >/dev/null
}

begin "SIGTERM -> exit 0"
stop_and_check "$DRAIN_S"
end

# Kubernetes may stop a pod that is still loading its models (rollout, scale-down): the server
# must still exit 0 on SIGTERM. The drain waits for loading to end (~5-10 s here for the three
# default models), so the bound is the Deployment's terminationGracePeriodSeconds (40 s).
begin "SIGTERM while loading -> exit 0"
podman run -d --name "$NAME" --network host --read-only --read-only-tmpfs=false "$IMAGE" \
  --listen "127.0.0.1:$PORT" --metrics-listen "" --drain-timeout-s "$DRAIN_S" >/dev/null
sleep 1
grep -q '^visionserve: SERVING' <<<"$(podman logs "$NAME" 2>&1)" && fail "already SERVING after 1 s"
stop_and_check 40
end
