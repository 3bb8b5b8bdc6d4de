# visionserve container image: the gRPC daemon and visionctl on Debian 12.
#
#   docker build -t visionserve .
#   docker run --rm -p 8500:8500 -p 9500:9500 visionserve
#
# BASE is any Debian 12 (bookworm) image. CI builds with podman from a debootstrapped base
# (tools/container_test.sh: --build-arg BASE=localhost/localdebian:bookworm) and bind-mounts the
# host's ccache at /ccache so the compile is mostly cache hits; without the mount (a plain
# `docker build`) the same steps run, only slower: measured 3.8 min for a no-cache compile +
# unit tests on 2 cores, plus the apt layers.
ARG BASE=debian:bookworm

# ---- build: compile Release and run the unit tests --------------------------------------------
FROM ${BASE} AS build
LABEL io.visionserve.stage=build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      g++ cmake ninja-build pkg-config ccache grpc-proto \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libtbb-dev libabsl-dev libgtest-dev libgmock-dev prometheus-cpp-dev \
      libturbojpeg0-dev libjpeg-dev libpng-dev libspng-dev libonnx-dev \
      python3-pil \
 && rm -rf /var/lib/apt/lists/*

# Same relative layout as a host build (ROOT/build/release with CCACHE_BASEDIR=ROOT), so the
# ccache entries of a host build are hits here.
ENV CCACHE_DIR=/ccache CCACHE_BASEDIR=/src CCACHE_MAXSIZE=5G CCACHE_STATSLOG=/tmp/ccache.log
WORKDIR /src
COPY . .
ARG JOBS=
# The unit tests (the GoogleTest binaries, label sanitize), including the Pillow parity tests
# (python3-pil above). Not here: the e2e label (the daemon over gRPC, Python grpcio clients, a
# real Prometheus), the PyTorch parity label (python3-torch is ~1 GB) and the deploy label (the
# repository's manifests): tools/test.sh runs those on the host, and tools/container_test.sh
# runs this image end to end.
RUN cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DVISIONSERVE_BUILD_BENCH=OFF \
 && cmake --build build/release -j "${JOBS:-$(nproc)}" \
 && cd build/release \
 && ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 600 -L sanitize -LE e2e \
 && { ccache --show-log-stats | grep -E 'Hits|Misses' || true; }

# ---- runtime: shared libraries, the two binaries and the default model repository ------------
FROM ${BASE} AS runtime
LABEL io.visionserve.stage=runtime
ENV DEBIAN_FRONTEND=noninteractive
# The packages of the libraries the binaries link directly (readelf -d: NEEDED); the C/C++
# runtime is in every Debian base.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 libtbb12 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libturbojpeg0 libspng0 libssl3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin visionserve

COPY --from=build /src/build/release/server/visionserve /src/build/release/server/visionctl \
     /usr/local/bin/
COPY deploy/models/ /etc/visionserve/models/
# Fail the build, not the first start, when a shared library is missing.
RUN ! ldd /usr/local/bin/visionserve /usr/local/bin/visionctl | grep 'not found' \
 && /usr/local/bin/visionserve --help >/dev/null

USER 10001:10001
# gRPC (VisionService, grpc.health.v1, reflection) and Prometheus GET /metrics.
EXPOSE 8500 9500
# visionserve drains on SIGTERM (sigwait; it needs no init process as PID 1) and exits 0.
STOPSIGNAL SIGTERM
# If --listen moves the gRPC port, set VISIONSERVE_PORT to it so the check follows.
ENV VISIONSERVE_PORT=8500
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD visionctl --server "127.0.0.1:${VISIONSERVE_PORT}" --timeout-ms 2000 health
# Defaults for every flag a container needs; arguments given to `docker run IMAGE ...` are
# appended and win (the last occurrence of a flag counts), e.g. --threads 4 or
# --repository /models. --threads is left to the CPU allowance (affinity and cgroup quota).
ENTRYPOINT ["/usr/local/bin/visionserve", "--listen=0.0.0.0:8500", "--metrics-listen=0.0.0.0:9500", \
            "--repository=/etc/visionserve/models", "--default-model=regnet_y_400mf", \
            "--drain-timeout-s=20"]
CMD []

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="visionserve" \
      org.opencontainers.image.description="gRPC image-classification server for CPU servers (dynamic batching, latency policies, Prometheus metrics)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm" \
      io.visionserve.ports.grpc="8500" \
      io.visionserve.ports.metrics="9500"
