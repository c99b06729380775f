# cutover - a two-stage Debian 12 image: build with the -dev packages, run with the libraries only.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        gcc make pkg-config libevent-dev libssl-dev libnghttp2-dev libjansson-dev libmaxminddb-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make build/cutover

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libevent-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7 libssl3 libnghttp2-14 \
        libjansson4 libmaxminddb0 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 65532 --no-create-home cutover
COPY --from=build /src/build/cutover /usr/local/bin/cutover
COPY config/example.json /etc/cutover/cutover.json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cutover"]
CMD ["-c", "/etc/cutover/cutover.json"]
