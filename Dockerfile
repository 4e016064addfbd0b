# Multi-stage build of cpu-anomaly; docker-compose.yml runs it in monitor
# mode next to InfluxDB 2, Prometheus, node exporter and Grafana.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cpu-anomaly

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /app cpu-anomaly
WORKDIR /app
COPY --from=build /src/target/release/cpu-anomaly /usr/local/bin/cpu-anomaly
COPY config.yaml /app/config.yaml
COPY datasets /app/datasets
# Volumes mounted here inherit this ownership.
RUN mkdir -p /app/logs /app/models /app/output && chown -R cpu-anomaly /app
USER cpu-anomaly
ENTRYPOINT ["cpu-anomaly"]
CMD ["--mode", "monitor"]
