# syntax=docker/dockerfile:1
# taxon's container image: `taxon serve` as a non-root user on a read-only root filesystem.
#
#   docker build -t taxon:0.1.0 .                                  # no model inside
#   docker build --build-arg MODEL=models/news -t taxon:news .     # bake a trained model in
#
# The model comes from one of three places (README "Deploy"):
#   a volume     docker run -v "$PWD/model:/opt/taxon/model:ro" ...   (the default CMD serves it)
#   baked in     --build-arg MODEL=DIR copies DIR (a `taxon train --output` folder in the build
#                context) to /opt/taxon/model
#   the registry docker run ... IMAGE --alias production, with TAXON_REGISTRY_DB and
#                TAXON_REGISTRY_ARTIFACTS (s3://...) and AWS_* credentials in the environment
# Writable paths: /var/lib/taxon (the working folder: registry cache, users and alert
# databases, prediction log) and /tmp; mount both as volumes when the root filesystem is
# read-only (`docker run --read-only -v taxon-data:/var/lib/taxon --tmpfs /tmp ...`).
# scripts/check-image.sh builds the same layout FROM scratch and runs it (no base image can be
# pulled in CI).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the registry index and the target folder between builds; the binary is
# copied out of them, stripped (the release profile keeps line tables: 257 MB, 40 MB without).
# rust:bookworm (buildpack-deps) already has libssl-dev, pkg-config and binutils.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p taxon-cli \
    && install -D -s -m 0755 target/release/taxon /out/usr/local/bin/taxon
# The model to bake in: a folder in the build context, or nothing (a README saying so).
ARG MODEL=""
RUN mkdir -p /out/opt/taxon/model /out/var/lib/taxon \
    && cp -R "${MODEL:-deploy/docker/no-model}/." /out/opt/taxon/model/

# distroless/cc: glibc, libgcc, libstdc++, OpenSSL's libcrypto (which taxon links) and CA
# certificates; no shell, no package manager. `nonroot` is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="taxon" \
      org.opencontainers.image.description="taxon serve: an inference server for text classifiers (MLOps platform for text classification)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="taxon" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=builder --chown=0:0 /out/usr/local/bin/taxon /usr/local/bin/taxon
COPY --from=builder --chown=0:0 /out/opt/taxon/model /opt/taxon/model
COPY --from=builder --chown=65532:65532 /out/var/lib/taxon /var/lib/taxon
WORKDIR /var/lib/taxon
ENV TAXON_SERVE_HOST=0.0.0.0 \
    TAXON_SERVE_PORT=8000 \
    TAXON_SERVE_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8000
VOLUME ["/var/lib/taxon"]
# No HEALTHCHECK: the image has no HTTP client; orchestrators probe GET /health (liveness) and
# GET /ready (readiness) on port 8000, as the Helm chart does.
# checkov:skip=CKV_DOCKER_2: no HTTP client in a distroless image; Kubernetes probes /health and /ready
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/taxon", "serve"]
CMD ["--model", "/opt/taxon/model"]
