# gattway in a container: the simulator by default; a real radio through the host's
# BlueZ over its D-Bus socket (README, "Running as a service"). Build:
#   docker build -t gattway .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# libdbus is built from source (the dbus crate's vendored feature): no -dev packages.
RUN cargo build --release --locked --bin gattway \
    && strip /src/target/release/gattway

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/gattway gattway
COPY --from=build /src/target/release/gattway /usr/local/bin/gattway
USER 10001
# Every port of the container is published on purpose, so it listens on all of them;
# gattway refuses that without credentials: give GATTWAY_AUTH_JWT_SECRET (or a
# config file with API keys).
ENV GATTWAY_LISTEN=0.0.0.0:8080 \
    GATTWAY_BACKEND=sim \
    XDG_DATA_HOME=/var/lib
VOLUME ["/var/lib/gattway"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gattway"]
CMD ["serve"]
