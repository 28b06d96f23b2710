//! The `hotline` binary: command line, logging, signals. Thin: the work is in the crates.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Hotline: a softswitch for China 400 numbers"
)]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the switch (the default command).
    Run {
        /// Config file or directory; the embedded default when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config file or directory: every error with file, line and key path.
    /// Exit status 0 when valid, 1 when it has errors, 2 when it cannot be read.
    Check {
        /// Config file or directory.
        path: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    match cli.cmd.unwrap_or(Cmd::Run { config: None }) {
        Cmd::Run { config } => run(config),
        Cmd::Check { path } => check(&path),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOTLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn load(config: Option<&PathBuf>) -> Result<hotline_config::Compiled, String> {
    match config {
        Some(p) => hotline_config::load_path(p, 1).map_err(|e| e.to_string()),
        None => {
            hotline_config::from_toml_str(hotline_config::DEFAULT_CONFIG, "<embedded default>", 1)
                .map_err(|e| e.to_string())
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    if !path.exists() {
        eprintln!("{}: cannot read: no such file or directory", path.display());
        return ExitCode::from(2);
    }
    match hotline_config::load_path(path, 1) {
        Ok(c) => {
            for w in &c.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} numbers, hash {})",
                path.display(),
                c.table.len(),
                c.table.hash()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn run(config: Option<PathBuf>) -> ExitCode {
    let compiled = match load(config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(async move {
        let running = match hotline_server::start(compiled, config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        signals(&running);
        running.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// SIGHUP reloads; SIGTERM and SIGINT stop taking calls, finish and flush.
fn signals(running: &hotline_server::Running) {
    use tokio::signal::unix::{signal, SignalKind};
    let control = running.control();
    tokio::spawn(async move {
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if control.send(hotline_server::Control::Reload(tx)).await.is_err() {
                        return;
                    }
                    let _ = rx.await;
                }
                _ = term.recv() => {
                    tracing::info!("SIGTERM: finishing calls and stopping");
                    let _ = control.send(hotline_server::Control::Shutdown).await;
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: finishing calls and stopping");
                    let _ = control.send(hotline_server::Control::Shutdown).await;
                }
            }
        }
    });
}
