#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs dependencies, builds
# (Release), runs every test, builds and smoke-tests the container image with podman
# (tools/container_test.sh), then builds ASan+UBSan and runs the tests again.
# Usage: tools/test.sh [--no-sanitize] [--no-container]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SANITIZE=1
CONTAINER=1
for a in "$@"; do
  case "$a" in
    --no-sanitize) SANITIZE=0 ;;
    --no-container) CONTAINER=0 ;;
    *) echo "usage: $0 [--no-sanitize] [--no-container]" >&2; exit 2 ;;
  esac
done

tools/setup.sh
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/visionserve-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}  # relative paths: clones and worktrees share hits
JOBS=${JOBS:-$(nproc)}

build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S "$ROOT" -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

build build/release -DCMAKE_BUILD_TYPE=Release
(cd build/release && ctest --output-on-failure -j "$JOBS" --timeout 600)

# Right after the Release build: the image's build stage reuses its ccache entries.
if [ "$CONTAINER" = 1 ]; then
  tools/container_test.sh
else
  echo "test: container image build and smoke test SKIPPED (--no-container)"
fi

if [ "$SANITIZE" = 1 ]; then
  build build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVISIONSERVE_SANITIZE=ON -DVISIONSERVE_BUILD_BENCH=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build/asan && ctest --output-on-failure -j "$JOBS" --timeout 1200 -L sanitize)
fi
