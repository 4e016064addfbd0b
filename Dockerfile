# Multi-stage build of the cpu-anomaly binary. The stack issue (#5) wires it
# into docker-compose.yml with InfluxDB, Prometheus and Grafana.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cpu-anomaly

FROM debian:bookworm-slim
RUN useradd --system --home /app cpu-anomaly
WORKDIR /app
COPY --from=build /src/target/release/cpu-anomaly /usr/local/bin/cpu-anomaly
COPY config.yaml /app/config.yaml
COPY datasets /app/datasets
RUN chown -R cpu-anomaly /app
USER cpu-anomaly
ENTRYPOINT ["cpu-anomaly"]
CMD ["--mode", "train"]
