# as4gw container image: a static-ish release build on Debian, run as an unprivileged user.
# Build:  docker build -t as4gw .
# Run:    docker run -p 8443:8443 -p 127.0.0.1:8080:8080 -v as4gw-data:/var/lib/as4gw as4gw
# (The demo configuration binds 127.0.0.1; mount your own as4gw.toml, pmodes/ and certs/ for
#  anything else.)
FROM rust:1.90-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked --bin as4gw

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/as4gw --create-home as4gw
COPY --from=build /src/target/release/as4gw /usr/local/bin/as4gw
WORKDIR /etc/as4gw
COPY as4gw.toml as4gw-blue.toml ./
COPY pmodes ./pmodes
COPY certs ./certs
USER as4gw
VOLUME ["/var/lib/as4gw"]
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/as4gw"]
CMD ["serve", "--config", "/etc/as4gw/as4gw.toml"]
