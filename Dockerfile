# syntax=docker/dockerfile:1
# Multi-stage build: compile with the Rust toolchain, ship only the binary and the example
# policies, run as an unprivileged user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin ordergate \
 && strip target/release/ordergate

FROM debian:bookworm-slim
# CA roots for https upstreams and JWKS URLs that rely on the system's trust store.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ordergate --create-home ordergate
COPY --from=build /src/target/release/ordergate /usr/local/bin/ordergate
COPY config/ /etc/ordergate/
USER 10001
WORKDIR /var/lib/ordergate
# Mount the policy, its certificates and keys at /etc/ordergate (read-only) and give the audit
# log a volume: set `[audit] path = "/var/lib/ordergate/audit/audit.jsonl"` in the policy.
VOLUME ["/var/lib/ordergate"]
EXPOSE 8443 9901
ENTRYPOINT ["/usr/local/bin/ordergate"]
CMD ["serve", "-c", "/etc/ordergate/policy.toml"]
