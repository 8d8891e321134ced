//! The `philia-bot` binary: the command line of the library (`philia_bot::cli`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    philia_bot::cli::run().await
}
