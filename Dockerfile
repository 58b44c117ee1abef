# syntax=docker/dockerfile:1
#
# Sluice server image.
#
#   docker build -t sluice .
#   docker run -p 8080:8080 -v sluice-data:/data sluice            # embedded default: /data
#   docker run -p 8080:8080 -e AWS_ENDPOINT_URL_S3=... -e AWS_REGION=... \
#     -e AWS_ACCESS_KEY_ID=... -e AWS_SECRET_ACCESS_KEY=... sluice --bucket my-bucket --path prod
#
# The entrypoint is `sluice serve`; the default arguments (CMD) are `--local-root /data`.
# Arguments given to `docker run` / compose's `command:` replace them (e.g. `--bucket b`).
# Every flag also has an environment variable (SLUICE_PORT, SLUICE_BUCKET, SLUICE_PATH, ...;
# see `sluice serve --help`). Don't set SLUICE_LOCAL_ROOT together with --bucket: the two
# conflict.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build --
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src

# 1. Dependencies only, against stub sources: this layer is rebuilt only when Cargo.toml or
#    Cargo.lock change. The stubs stand in for every target the manifest names (cargo
#    refuses a manifest whose explicit target paths are missing).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/integration benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > tests/integration/main.rs \
    && echo 'fn main() {}' > benches/hot_paths.rs
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo build --release --locked --bin sluice

# 2. The real sources. COPY keeps the files' own (older) modification times, so touch the
#    crate roots or cargo would keep the stub build.
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin sluice \
    && install -D -m 0755 target/release/sluice /out/sluice

# -------------------------------------------------------------- runtime --
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to real S3 endpoints (the server's HTTP client verifies with the
# system's roots). Nothing else is needed: the binary links only glibc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid, so that orchestrators can check "runAsNonRoot" and volumes can
# be chowned ahead of time. /data is created owned by it before VOLUME, so a fresh named
# volume starts with that ownership.
RUN groupadd --system --gid 10001 sluice \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin sluice \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=build /out/sluice /usr/local/bin/sluice

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
ENV RUST_LOG=info

# No curl or wget in this image: bash's /dev/tcp sends a plain HTTP/1.0 GET /health (the
# server speaks HTTP/1.1 and h2c on its one port) and checks for a 200 status line.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SLUICE_PORT:-8080} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && IFS= read -r -t 4 status <&3 && [[ $status == HTTP/1.?' 200'* ]]"]

# SIGTERM (docker stop) makes the server stop accepting, end its sessions with a terminal
# 503 (clients reconnect elsewhere) and drain for up to 10 s: give it more than that
# (compose: stop_grace_period: 15s; docker stop -t 15).
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice", "serve"]
CMD ["--local-root", "/data"]
