# mutask container image (multi-stage). The build stages run the same commands CI runs natively
# (`npm ci && npm run build` in ui/, then `cargo build --release --locked`, which embeds ui/dist).
FROM node:20-bookworm AS ui
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=ui /src/ui/dist ui/dist
RUN cargo build --release --locked && strip target/release/mutask

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/mutask --create-home mutask
COPY --from=build /src/target/release/mutask /usr/local/bin/mutask
COPY templates /etc/mutask/templates
COPY plugins /etc/mutask/plugins
USER mutask
ENV MUTASK_LISTEN=0.0.0.0:8081 \
    MUTASK_TEMPLATES_DIR=/etc/mutask/templates \
    MUTASK_FUNCTIONS_DIR=/etc/mutask/functions \
    MUTASK_SCRIPTS_DIR=/etc/mutask/scripts \
    MUTASK_PLUGINS_DIR=/etc/mutask/plugins \
    MUTASK_DATA_DIR=/var/lib/mutask
EXPOSE 8081
# ready = the database answers and every migration is applied (503 while draining)
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8081/unsecured/mon/ready || exit 1
ENTRYPOINT ["/usr/local/bin/mutask"]
CMD ["serve"]
