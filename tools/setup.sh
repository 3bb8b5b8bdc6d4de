#!/usr/bin/env bash
# Installs every build and test dependency of visionserve from Debian 12 packages.
# Idempotent: when everything is present it installs nothing and exits quickly.
set -euo pipefail

PACKAGES=(
  g++ cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libtbb-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev prometheus-cpp-dev
  libturbojpeg0-dev libjpeg-dev libpng-dev libspng-dev
  # end-to-end tests: Python client, health stubs, test images
  grpc-proto python3-grpcio python3-protobuf python3-numpy python3-pil
  # metrics tests: promtool and a real Prometheus server; YAML for the deploy files
  prometheus python3-yaml
  # ONNX: the schema (onnx.proto) for the build; torch, torchvision and onnx for parity tests
  libonnx-dev python3-torch python3-torchvision python3-onnx
  # visionload's plot script (loadtest/plot.py) and its test
  python3-matplotlib
  # container image build and smoke test (tools/container_test.sh): podman with runc, and
  # debootstrap for the local Debian base image
  podman runc debootstrap
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
