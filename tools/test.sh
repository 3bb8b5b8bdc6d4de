#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs dependencies, builds
# (Release, then ASan+UBSan) and runs every test. Usage: tools/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SANITIZE=1
for a in "$@"; do
  case "$a" in
    --no-sanitize) SANITIZE=0 ;;
    *) echo "usage: $0 [--no-sanitize]" >&2; exit 2 ;;
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

if [ "$SANITIZE" = 1 ]; then
  build build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVISIONSERVE_SANITIZE=ON -DVISIONSERVE_BUILD_BENCH=OFF
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build/asan && ctest --output-on-failure -j "$JOBS" --timeout 1200 -L sanitize)
fi
