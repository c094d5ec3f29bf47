# syntax=docker/dockerfile:1
# Baton in a container: a build stage with the pinned toolchain, then a small runtime stage
# (Debian slim, OpenSSL's shared library and the CA bundle only) running as an unprivileged
# user. Build: `docker build -t baton .`; run:
#   docker run -p 8443:8443 -v baton-data:/var/lib/baton baton
# The data directory is a volume: the store, the CA and its key, the TLS files and the API key
# live there (see docs/operations.md "Run in a container").

# The toolchain of rust-toolchain.toml (1.95.0).
FROM rust:1.95.0-slim-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p baton \
 && install -D -m 0755 target/release/baton /out/baton

FROM debian:bookworm-slim AS runtime
# Only what the binary links against (libssl3) and the CA bundle for APNs and webhooks.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid baton --home-dir /var/lib/baton --shell /usr/sbin/nologin baton \
 && install -d -o baton -g baton -m 0700 /var/lib/baton
COPY --from=build /out/baton /usr/local/bin/baton
USER 10001:10001
WORKDIR /var/lib/baton
VOLUME ["/var/lib/baton"]
ENV BATON_DATA=/var/lib/baton \
    BATON_LISTEN=0.0.0.0:8443
EXPOSE 8443
# Probes: GET /healthz and /readyz on the listener (no curl in the image; probe from outside).
ENTRYPOINT ["/usr/local/bin/baton"]
CMD ["serve"]
