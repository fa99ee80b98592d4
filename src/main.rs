//! The `mutask` binary: parse the command line, set up logging, run.
//!
//! `mutask sandbox` (hidden) is the JavaScript worker of the sandbox pool: it is dispatched
//! before any runtime or logging exists, because its stdout carries only protocol lines and its
//! address-space limit should not pay for runtime threads.

use clap::Parser;
use mutask::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("sandbox") {
        std::process::exit(mutask::sandbox::run_worker());
    }
    mutask::install_crypto_provider();
    let cli = Cli::parse();
    // the format may come from the config file too; a bad file is reported by `run` below
    let format = cli
        .settings
        .log_format
        .or_else(|| {
            cli.settings
                .clone()
                .merge_file()
                .ok()
                .and_then(|s| s.log_format)
        })
        .unwrap_or(LogFormat::Text);
    init_logging(format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mutask: error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(mutask::app::run(cli)) {
        eprintln!("mutask: error: {e:#}");
        std::process::exit(1);
    }
}
