# cutover - the container image (Debian 12). Build: `make image` (docker build -t cutover:VERSION .).
#
# Two stages: "build" compiles cutover and cutoverctl with the -dev packages of scripts/deps.sh's
# build list; the runtime stage holds the two binaries and the shared libraries they link, nothing
# else of the repository (no configuration: it comes from a mount).
#
# Running it (Kubernetes: deploy/; docs/operations.md, "Container image"):
#   /etc/cutover/cutover.json  the configuration, mounted read-only (a ConfigMap); the CMD names it
#   /var/lib/cutover           state_file and audit_file (a volume: the one durable writable path)
#   /run/cutover               control.socket (a volume, emptyDir)
# cutover writes nothing else: the root file system may be read-only. It runs as uid/gid 65532,
# needs no shell at run time (exec-form ENTRYPOINT) and no capability (ports above 1024).
# Ports (the values docs/configuration.md uses): 8080 data listener, 9443 admin API (mutual TLS),
# 9100 metrics, /healthz and /readyz.

FROM debian:12-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        gcc make pkg-config libevent-dev libssl-dev libnghttp2-dev libjansson-dev \
        libmaxminddb-dev libcurl4-openssl-dev libtcmalloc-minimal4 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY scripts/ scripts/
COPY core/ core/
COPY config/ config/
COPY proxy/ proxy/
COPY control/ control/
RUN make -j"$(nproc)" BUILD=build all

FROM debian:12-slim
ARG VERSION=dev
LABEL org.opencontainers.image.title="cutover" \
      org.opencontainers.image.description="blue/green HTTP reverse proxy" \
      org.opencontainers.image.version="${VERSION}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7 libssl3 libnghttp2-14 \
        libjansson4 libmaxminddb0 libcurl4 libtcmalloc-minimal4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 cutover \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cutover \
    && mkdir -p /etc/cutover /var/lib/cutover /run/cutover \
    && chown 65532:65532 /var/lib/cutover /run/cutover \
    && chmod 0750 /var/lib/cutover /run/cutover
COPY --from=build /src/build/cutover /usr/local/bin/cutover
COPY --from=build /src/build/cutoverctl /usr/local/bin/cutoverctl
USER 65532:65532
WORKDIR /var/lib/cutover
VOLUME ["/var/lib/cutover", "/run/cutover"]
EXPOSE 8080 9443 9100
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["-c", "/etc/cutover/cutover.json"]
