//! The `mutask` binary: parse the command line, set up logging, run.

use clap::Parser;
use mutask::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("sandbox") {
        std::process::exit(mutask::sandbox::run_worker());
    }
    let cli = Cli::parse();
    init_logging(cli.settings.log_format.unwrap_or(LogFormat::Text));
    if let Err(e) = mutask::app::run(cli).await {
        eprintln!("mutask: error: {e:#}");
        std::process::exit(1);
    }
}
