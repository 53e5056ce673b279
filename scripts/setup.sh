#!/usr/bin/env bash
# Installs every build and test dependency that is missing (Debian packages,
# apt-get), then configures and builds the project in Release into build/.
# Safe to re-run: it installs nothing that is already there and rebuilds
# incrementally.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake ninja-build g++ pkg-config git
  libabsl-dev                                  # status, flags, strings, synchronization
  libgrpc++-dev protobuf-compiler-grpc         # gRPC services and codegen
  libprotobuf-dev protobuf-compiler            # wire messages
  nlohmann-json3-dev                           # JSON output and test data
  libgtest-dev libgmock-dev libbenchmark-dev   # tests and micro-benchmarks
  libopenmpi-dev openmpi-bin                   # MPI stage transport
  g++-aarch64-linux-gnu qemu-user googletest   # NEON kernels cross-built, tested under qemu
  python3 python3-numpy python3-grpcio python3-grpc-tools  # Python client test
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-2}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
