//! The `philia-bot` binary: the command line of the library (`philia_bot::cli`).

/// mimalloc rather than glibc's malloc: see its line in `Cargo.toml` (the webhook's hot path allocates).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    philia_bot::cli::run().await
}
