#!/usr/bin/env bash
# Installs what is needed, builds visionserve (Release) and starts it on the embedded default
# models (or with the flags given, e.g. --repository DIR --listen 0.0.0.0:8500).
# Usage: tools/serve.sh [visionserve flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh >&2
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/visionserve-ccache}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "${JOBS:-$(nproc)}" --target visionserve visionctl >&2
echo "serve: visionctl is build/release/server/visionctl" >&2
exec build/release/server/visionserve "$@"
