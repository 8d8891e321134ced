# Build: dependencies are compiled in their own layer, so editing src/ rebuilds only the bot itself.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY migration/Cargo.toml migration/Cargo.toml
RUN mkdir -p src migration/src \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs migration/src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src migration/src
COPY migration migration
COPY src src
# Make cargo see the real sources as newer than the placeholder build.
RUN touch src/main.rs src/lib.rs migration/src/lib.rs && cargo build --release --locked

# Run: a slim image with CA certificates (TikTok and the LLM are HTTPS) and a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /app --uid 10001 philia
WORKDIR /app
COPY --from=build /app/target/release/philia-bot /usr/local/bin/philia-bot
COPY config config
USER philia
ENV ENVIRONMENT=production
EXPOSE 8000
CMD ["philia-bot", "serve"]
