//! The `portico` binary: parses the command line and runs one role.

mod cli;
mod roles;
mod secrets;
mod settings;

use clap::Parser;

/// mimalloc rather than glibc's malloc: with a big configuration (100,000 routes) the heap that
/// the requests share with the configuration is large and fragmented, and glibc's malloc then
/// walks cold free chunks (consolidating fastbins, unlinking neighbours) on the request path.
/// mimalloc's per-thread pages of one size class keep a request's allocations on hot memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PORTICO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // PORTICO_WORKERS: number of threads serving requests (default: one per core). With one,
    // everything runs on a single-threaded scheduler: no cross-thread wake-ups per request.
    let workers = std::env::var("PORTICO_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0);
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = workers.filter(|&n| n > 1) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("portico: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(roles::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portico: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
