# mutask container image (multi-stage). The build stage runs the same command CI runs natively
# (`cargo build --release --locked`); the UI build joins it when the UI lands (issue: packaging).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/mutask

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/mutask --create-home mutask
COPY --from=build /src/target/release/mutask /usr/local/bin/mutask
COPY templates /etc/mutask/templates
USER mutask
ENV MUTASK_LISTEN=0.0.0.0:8081 \
    MUTASK_TEMPLATES_DIR=/etc/mutask/templates \
    MUTASK_FUNCTIONS_DIR=/etc/mutask/functions \
    MUTASK_SCRIPTS_DIR=/etc/mutask/scripts \
    MUTASK_DATA_DIR=/var/lib/mutask
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/mutask"]
CMD ["serve"]
