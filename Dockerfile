# syntax=docker/dockerfile:1
# Multi-stage build of the `sluice` server. Build: docker build -t sluice .
# Run the embedded default (data in the /data volume):   docker run -p 8080:8080 -v sluice-data:/data sluice
# Run on a bucket:   docker run -p 8080:8080 -e AWS_REGION=... -e AWS_ACCESS_KEY_ID=... \
#                      -e AWS_SECRET_ACCESS_KEY=... sluice --port 8080 --bucket my-bucket

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target caches persist between builds (BuildKit cache mounts), so a
# rebuild after a code change recompiles only this crate.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sluice \
 && cp target/release/sluice /usr/local/bin/sluice

FROM debian:bookworm-slim
# ca-certificates for https endpoints (AWS S3, R2, ...); curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --no-create-home sluice \
 && mkdir /data && chown sluice:sluice /data
COPY --from=build /usr/local/bin/sluice /usr/local/bin/sluice
USER sluice
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["sluice", "serve"]
CMD ["--port", "8080", "--local-root", "/data"]
