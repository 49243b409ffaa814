# as4gw container image (docs/lifecycle.md#packaging). Two stages: a `dist` build (the release
# profile with link-time optimisation, see Cargo.toml) on the Rust image, then only the binary
# on debian-slim, run as an unprivileged user with fixed ids.
#
# Build:  docker build -t as4gw .
# Run:    docker run -d --name as4gw -p 8443:8443 -p 127.0.0.1:8080:8080 \
#           -v as4gw-store:/var/lib/as4gw \
#           -v "$PWD/pmodes:/etc/as4gw/pmodes:ro" -v "$PWD/certs:/etc/as4gw/certs:ro" as4gw
# Reload keys, certificates and P-Modes: docker kill --signal=HUP as4gw
#
# The baked-in configuration is the demo gateway "red" (demo keys: never in production), with
# the listeners on all interfaces of the container and the store on the /var/lib/as4gw volume.
# Mount your own /etc/as4gw/as4gw.toml, pmodes/ and certs/ for anything real; publish the
# backend API (plain HTTP, bearer tokens) on loopback or behind a TLS proxy only.

FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# The SQLite build flags (LIBSQLITE3_FLAGS, see .cargo/config.toml).
COPY .cargo ./.cargo
COPY src ./src
COPY benches ./benches
RUN cargo build --profile dist --locked --bin as4gw \
    && strip target/dist/as4gw

FROM debian:bookworm-slim
# ca-certificates: HTTPS webhooks to backends with public certificates. Package versions are
# not pinned (hadolint DL3008 is ignored in .hadolint.yaml): bookworm security updates replace
# them and old versions leave the archive, so a pin would break rebuilds, not secure them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 as4gw \
    && useradd --system --uid 10001 --gid as4gw --home-dir /var/lib/as4gw --no-create-home \
       --shell /usr/sbin/nologin as4gw \
    && mkdir -p /etc/as4gw /var/lib/as4gw \
    && chown as4gw:as4gw /var/lib/as4gw \
    && chmod 0750 /var/lib/as4gw
COPY --from=build /src/target/dist/as4gw /usr/local/bin/as4gw
WORKDIR /etc/as4gw
COPY as4gw.toml ./as4gw.toml
COPY pmodes ./pmodes
COPY certs ./certs
# The demo configuration listens on 127.0.0.1 and keeps its store next to itself; in the
# container it listens on every interface and keeps the store on the volume.
RUN sed -i \
      -e 's|^url = "https://127.0.0.1:8443/as4"|url = "https://0.0.0.0:8443/as4"|' \
      -e 's|^url = "http://127.0.0.1:8080"|url = "http://0.0.0.0:8080"|' \
      -e 's|^path = "data/red"|path = "/var/lib/as4gw/store"|' \
      as4gw.toml \
    && grep -q '^path = "/var/lib/as4gw/store"' as4gw.toml \
    && grep -q '^url = "https://0.0.0.0:8443/as4"' as4gw.toml \
    && /usr/local/bin/as4gw --version
# Numeric ids (the as4gw user above): resolvable by any runtime, matches volume ownership.
USER 10001:10001
VOLUME ["/var/lib/as4gw", "/etc/as4gw/pmodes", "/etc/as4gw/certs"]
EXPOSE 8443 8080
# Readiness the way the gateway judges it (store, P-Modes, AS4 listener, scheduler) when the
# container gets a backend token (docker run -e AS4GW_TOKEN=…); without one, liveness (the API
# answers). The image has no curl: the binary is its own probe.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/as4gw", "health", "--url", "http://127.0.0.1:8080", "--timeout", "5"]
# SIGTERM: graceful shutdown (finish requests and send attempts in flight); give it time.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/as4gw"]
CMD ["serve", "--config", "/etc/as4gw/as4gw.toml"]
