# philia-bot image: `docker build -t philia-bot .` (docker-compose.yml and Railway build it the same way).

# Build stage. The dependencies compile in a layer of their own, keyed only on Cargo.toml and Cargo.lock: a
# change to src/ rebuilds the bot, not the ~400 crates under it. (Placeholder sources instead of cargo-chef:
# the same caching without a tool to install, and no BuildKit cache mounts, which Railway accepts only with
# its own ids.) The toolchain is the crate's rust-version, the one CI checks.
FROM rust:1.94-slim-bookworm AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock ./
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src migration/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src migration/src
COPY migration migration
COPY src src
# The sources embed the built-in texts (config/), the demo inventory (examples/inventory.csv) and the
# staff console's script and styles (static/).
COPY config config
COPY examples examples
COPY static static
# Make cargo see the real sources as newer than the placeholder build; the empty data/ becomes the
# non-root user's folder for the embedded SQLite default.
RUN touch src/main.rs src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked --bin philia-bot \
 && mkdir -p /app/data

# Run stage: distroless (glibc, libgcc, CA certificates for TikTok and the LLM over HTTPS, no shell, no
# package manager), as the image's unprivileged `nonroot` user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /app
COPY --from=build /app/target/release/philia-bot /usr/local/bin/philia-bot
COPY config config
COPY --from=build --chown=65532:65532 /app/data data
USER 65532:65532
# Production by default; a container listens on every interface (PORT, which Railway sets, picks the port).
ENV ENVIRONMENT=production \
    PHILIA_SERVER__HOST=0.0.0.0
EXPOSE 8000
# No shell and no curl in the image: the binary itself asks /ready.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["philia-bot", "health", "--url", "http://127.0.0.1:8000/ready"]
CMD ["philia-bot", "serve"]
