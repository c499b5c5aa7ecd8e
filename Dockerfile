# syntax=docker/dockerfile:1
#
# Every studycafe executable, one target each (they share the dependency and build stages):
#
#   docker build --target seat-service -t studycafe/seat-service:0.1.0 .
#
# targets: seat-service, registration-service, payment-service, seat-view-service,
# identity-service, gateway, studycafe-broker (the embedded broker: a single-node demo; the
# production path is Apache Kafka).
#
# The runtime stages are Debian slim (pinned point release) with the executable, its database
# migrations (compiled into it by `sqlx::migrate!` and applied at start-up; the SQL files are
# shipped beside it for whoever reviews a schema change), a non-root numeric user and no
# compiler. The executables link only libc, libm and libgcc_s (librdkafka, SQLite and TLS are
# built in). Nothing at run time needs a shell; the Compose file's healthchecks use bash's
# /dev/tcp because slim images carry no curl. scripts/check-deploy-images builds the same
# layout FROM scratch offline and checks it against this file.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:12.12-slim

# --- build stages ----------------------------------------------------------------------------

FROM ${RUST_IMAGE} AS chef
# librdkafka (rdkafka's cmake build) and libsql (the broker) compile C code.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make g++ pkg-config perl \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# The dependency recipe changes only when a manifest or Cargo.lock does.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# Dependencies are their own cached layer: a source change rebuilds only the workspace crates.
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --workspace --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && for exe in seat-service registration-service payment-service seat-view-service \
               identity-service gateway studycafe-broker; do \
        cp "target/release/$exe" /out/; \
    done \
 && mkdir -p /out/web && if [ -d web ]; then cp -r web/. /out/web/; fi

# --- runtime stages --------------------------------------------------------------------------

FROM ${RUNTIME_IMAGE} AS runtime
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 studycafe \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/studycafe --shell /usr/sbin/nologin studycafe \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/studycafe
# Working directory for the embedded defaults (SQLite files, keys) when no volume is given.
WORKDIR /var/lib/studycafe
ENV RUST_LOG=info LOG_FORMAT=json
USER 10001:10001

FROM runtime AS seat-service
COPY --from=builder /out/seat-service /usr/local/bin/seat-service
COPY services/seat/migrations /usr/share/studycafe/migrations/seat
COPY services/seat/default-catalogue.toml /usr/share/studycafe/seat/default-catalogue.toml
ENV SEAT_HTTP_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/seat-service"]

FROM runtime AS registration-service
COPY --from=builder /out/registration-service /usr/local/bin/registration-service
COPY services/registration/migrations /usr/share/studycafe/migrations/registration
ENV REGISTRATION_HTTP_ADDR=0.0.0.0:8082
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/registration-service"]

FROM runtime AS payment-service
COPY --from=builder /out/payment-service /usr/local/bin/payment-service
COPY services/payment/migrations /usr/share/studycafe/migrations/payment
ENV PAYMENT_HTTP_ADDR=0.0.0.0:8083
EXPOSE 8083
ENTRYPOINT ["/usr/local/bin/payment-service"]

FROM runtime AS seat-view-service
COPY --from=builder /out/seat-view-service /usr/local/bin/seat-view-service
COPY services/seat-view/migrations /usr/share/studycafe/migrations/seat-view
ENV SEAT_VIEW_HTTP_ADDR=0.0.0.0:8084
EXPOSE 8084
ENTRYPOINT ["/usr/local/bin/seat-view-service"]

FROM runtime AS identity-service
COPY --from=builder /out/identity-service /usr/local/bin/identity-service
COPY services/identity/migrations /usr/share/studycafe/migrations/identity
ENV IDENTITY_HTTP_ADDR=0.0.0.0:8085
EXPOSE 8085
ENTRYPOINT ["/usr/local/bin/identity-service"]

FROM runtime AS gateway
COPY --from=builder /out/gateway /usr/local/bin/gateway
# The static web page, when the repository has one (an empty directory serves none).
COPY --from=builder /out/web /usr/share/studycafe/web
ENV GATEWAY_HTTP_ADDR=0.0.0.0:8080 GATEWAY_WEB_ROOT=/usr/share/studycafe/web
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS studycafe-broker
COPY --from=builder /out/studycafe-broker /usr/local/bin/studycafe-broker
ENV BROKER_LISTEN_ADDR=0.0.0.0:9092 BROKER_DATA_DIR=/var/lib/studycafe/broker
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/studycafe-broker"]
