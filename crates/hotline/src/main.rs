//! The `hotline` binary: command line, logging, signals. Thin: the work is in the crates.
//!
//! # Layout
//! - `main.rs`: the CLI ([`Cli`], [`Cmd`]), `run` (signals: SIGHUP reloads, SIGTERM/SIGINT
//!   drain), `check`.
//! - [`alloc`]: the process allocator (mimalloc) and its tuning.
//! - [`logging`]: stderr subscriber (text or JSON) with a runtime-reloadable filter.
//! - [`client`]: `status`, `reload`, `log-level` against a running instance's admin endpoint.
//! - [`explain`]: `hotline explain`.
//! - [`cdr`]: `hotline cdr query|report`, `hotline bill`.
//! - [`ship`]: `--source nats://...` for `cdr report` and `bill`, `hotline cdr tail`.
//!
//! Exit status (docs/OPERATIONS.md): 0 success; 1 the work failed (config errors, reload
//! refused, unreadable CDRs); 2 bad usage or input, an unreadable path for `check`, or an
//! instance that cannot be reached.

mod alloc;
mod cdr;
mod client;
mod explain;
mod logging;
mod ship;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// `hotline --version`: version, git commit and build date (from build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOTLINE_GIT_COMMIT"),
    ", built ",
    env!("HOTLINE_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    long_version = LONG_VERSION,
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
    /// Show a running instance's state (version, readiness, config generation, calls).
    Status {
        #[command(flatten)]
        target: AdminTarget,
        /// Print the raw /status JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a running instance re-read its config (like SIGHUP), and print the result.
    /// Exit status 1 when the new config has errors (the old one keeps running).
    Reload {
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Show or change a running instance's log filter (`debug`, `info,hotline_sip=trace`).
    LogLevel {
        /// The new filter (EnvFilter syntax); show the current one when absent.
        level: Option<String>,
        #[command(flatten)]
        target: AdminTarget,
    },
    /// Explain how a call would be routed: rules checked, list hits, the plan with timers.
    Explain {
        /// The called 400 number.
        number: String,
        /// The calling number.
        #[arg(long)]
        from: String,
        /// When the call comes in (RFC 3339, e.g. 2026-10-01T09:30+08:00); now when absent.
        #[arg(long)]
        at: Option<String>,
        /// IVR key chosen by the caller.
        #[arg(long)]
        key: Option<u8>,
        /// Inbound trunk name.
        #[arg(long)]
        trunk: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Config file or directory; the embedded default when absent.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Make a company API token (`[server.api]`, docs/API.md): prints the token to hand out
    /// (once: only its argon2 hash is kept) and the `[[token]]` entry for the token file.
    ApiToken {
        /// The token's id (letters, digits, '-', '_'); the audit log names changes by it.
        id: String,
        /// The company the token is for.
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        company: Option<String>,
        /// An operator token: every company.
        #[arg(long)]
        operator: bool,
    },
    /// Call records: query and reports.
    Cdr {
        #[command(subcommand)]
        cmd: CdrCmd,
    },
    /// Monthly bills per 400 number from the CDRs and a rate file.
    Bill {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Rate plans and accounts (TOML); default: billing.toml beside --config, else
        /// config/billing.toml.
        #[arg(long)]
        rates: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: cdr::BillFmt,
        #[command(flatten)]
        store: CdrStore,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum CdrCmd {
    /// Call records matching filters, as a table, CSV or JSON.
    Query {
        #[command(flatten)]
        filter: cdr::Filter,
        /// Show only the most recent N matches.
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "table")]
        format: cdr::QueryFmt,
        #[command(flatten)]
        store: CdrStore,
    },
    /// Calls, ASR, ACD, missed calls by hour, day, region, number, target; top callers.
    Report {
        #[command(flatten)]
        filter: cdr::Filter,
        /// Rows in the top / repeat caller lists.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, value_enum, default_value = "text")]
        format: cdr::ReportFmt,
        /// Also write the HTML report (charts) to this file.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(flatten)]
        store: CdrStore,
    },
    /// The platform's records as they arrive in the NATS JetStream stream the nodes ship to:
    /// the last N, then (with --follow) every new one until interrupted.
    Tail {
        /// NATS server, `nats://host:port`; default: `[server.cdr.ship] url` of --config.
        #[arg(long)]
        source: Option<String>,
        /// Stream name; default: `[server.cdr.ship] stream` of --config, else CDR.
        #[arg(long)]
        stream: Option<String>,
        /// Only this 400 number's records.
        #[arg(long)]
        number: Option<String>,
        /// Print the last N records first.
        #[arg(long, default_value_t = 10)]
        last: u64,
        /// Keep printing new records as they arrive.
        #[arg(long, short)]
        follow: bool,
        #[arg(long, value_enum, default_value = "text")]
        format: ship::TailFmt,
        /// Config file or directory.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

/// Where the running instance's admin endpoint is.
#[derive(clap::Args)]
struct AdminTarget {
    /// Admin address (IP:port); default: `[server] admin` of --config or of the embedded config.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The instance's config file or directory (to find its admin address).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// Where the CDR files are.
#[derive(clap::Args)]
struct CdrStore {
    /// CDR directory; default: `[server.cdr] dir` of --config or of the embedded config.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Config file or directory.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Read the whole platform's records from the NATS JetStream stream the nodes ship to
    /// (`nats://host:port`) instead of a directory (`report` and `bill`).
    #[arg(long, conflicts_with = "dir")]
    source: Option<String>,
    /// Stream name with --source; default: `[server.cdr.ship] stream` of --config, else CDR.
    #[arg(long, requires = "source")]
    stream: Option<String>,
}

fn main() -> ExitCode {
    alloc::tune();
    let cli = Cli::parse();
    let cmd = cli.cmd.unwrap_or(Cmd::Run { config: None });
    match cmd {
        Cmd::Run { config } => {
            let hook = logging::init(cli.log_json);
            run(config, hook)
        }
        Cmd::Check { path } => check(&path),
        Cmd::Status { target, json } => with_admin(&target, |a| client::status(a, json)),
        Cmd::Reload { target } => with_admin(&target, client::reload),
        Cmd::LogLevel { level, target } => {
            with_admin(&target, |a| client::log_level(a, level.as_deref()))
        }
        Cmd::Explain {
            number,
            from,
            at,
            key,
            trunk,
            json,
            config,
        } => match load(config.as_deref()) {
            Ok(c) => explain::run(
                &c,
                &number,
                &from,
                at.as_deref(),
                key,
                trunk.as_deref(),
                json,
            ),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Cmd::Cdr { cmd } => match cmd {
            CdrCmd::Query {
                filter,
                limit,
                format,
                store,
            } => {
                if store.source.is_some() {
                    eprintln!("--source: `cdr query` reads a directory; use `cdr report --source` or `cdr tail --source`");
                    return ExitCode::from(2);
                }
                with_store(&store, |d| cdr::query(d, &filter, limit, format))
            }
            CdrCmd::Report {
                filter,
                top,
                format,
                html,
                store,
            } => match &store.source {
                Some(url) => with_stream(url, &store, |s| {
                    ship::report(s, &filter, top, format, html.as_deref())
                }),
                None => with_store(&store, |d| {
                    cdr::report(d, &filter, top, format, html.as_deref())
                }),
            },
            CdrCmd::Tail {
                source,
                stream,
                number,
                last,
                follow,
                format,
                config,
            } => {
                let store = CdrStore {
                    dir: None,
                    config,
                    source,
                    stream,
                };
                let url = match &store.source {
                    Some(u) => Ok(u.clone()),
                    None => load(store.config.as_deref()).and_then(|c| {
                        c.settings
                            .cdr
                            .ship
                            .and_then(|s| s.urls.first().cloned())
                            .ok_or_else(|| {
                                "no --source and no [server.cdr.ship] url in the config".to_string()
                            })
                    }),
                };
                match url {
                    Ok(url) => with_stream(&url, &store, |s| {
                        ship::tail(s, number.as_deref(), last, follow, format)
                    }),
                    Err(e) => {
                        eprintln!("{e}");
                        ExitCode::from(2)
                    }
                }
            }
        },
        Cmd::Bill {
            month,
            rates,
            format,
            store,
        } => {
            let rates = cdr::rates_path(rates.as_deref(), store.config.as_deref());
            match &store.source {
                Some(url) => with_stream(url, &store, |s| ship::bill(s, &month, &rates, format)),
                None => with_store(&store, |d| cdr::bill(d, &month, &rates, format)),
            }
        }
        Cmd::ApiToken {
            id,
            company,
            operator: _,
        } => match hotline_api::new_token(&id, company.as_deref()) {
            Ok(t) => {
                eprintln!("token (give it to its holder; it is not stored):");
                println!("{}", t.token);
                eprintln!("\nadd to the [server.api] tokens file:\n");
                eprint!("{}", t.entry);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Cmd::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hotline",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

fn with_admin(t: &AdminTarget, f: impl FnOnce(SocketAddr) -> ExitCode) -> ExitCode {
    match client::admin_addr(t.admin, t.config.as_deref()) {
        Ok(a) => f(a),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

fn with_store(s: &CdrStore, f: impl FnOnce(&cdr::Chosen) -> ExitCode) -> ExitCode {
    match cdr::cdr_dir(s.dir.as_deref(), s.config.as_deref()) {
        Ok(d) => f(&d),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn with_stream(url: &str, s: &CdrStore, f: impl FnOnce(&ship::Stream) -> ExitCode) -> ExitCode {
    match ship::stream_of(url, s.stream.as_deref(), s.config.as_deref()) {
        Ok(st) => f(&st),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Compile `--config` (or the embedded default) as generation 1.
fn load(config: Option<&Path>) -> Result<hotline_config::Compiled, String> {
    match config {
        Some(p) => {
            hotline_config::load_path(p, 1, jiff::Zoned::now().date()).map_err(|e| e.to_string())
        }
        None => hotline_config::from_toml_str(
            hotline_config::DEFAULT_CONFIG,
            "<embedded default>",
            1,
            jiff::Zoned::now().date(),
        )
        .map_err(|e| e.to_string()),
    }
}

fn check(path: &Path) -> ExitCode {
    if !path.exists() {
        eprintln!("{}: cannot read: no such file or directory", path.display());
        return ExitCode::from(2);
    }
    if path.is_file() {
        if let Some(main) = hotline_config::included_by(path) {
            // A fragment (one company's targets, plans, numbers) only makes sense with the
            // file that includes it: alone it would fail on every shared name.
            println!(
                "{}: a fragment included by {}: checking the whole config",
                path.display(),
                main.display()
            );
            return check(&main);
        }
        if let Ok(text) = std::fs::read_to_string(path) {
            if hotline_config::is_rate_file(&text) {
                return check_rates(path);
            }
        }
    }
    match hotline_config::load_path(path, 1, jiff::Zoned::now().date()) {
        Ok(c) => {
            for n in &c.notes {
                println!("note: {n} (check it with `hotline check FILE`)");
            }
            for w in &c.warnings {
                println!("{w}");
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

/// `hotline check` on a rate file (`hotline bill --rates`, `[server.billing] file`): its own
/// format, checked by the billing parser.
fn check_rates(path: &Path) -> ExitCode {
    match hotline_config::billing::load_billing(path) {
        Ok(b) => {
            println!(
                "{}: ok: a rate file for `hotline bill` and [server.billing], not routing ({} plans, {} accounts)",
                path.display(),
                b.plans.len(),
                b.accounts.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

fn build_info() -> hotline_server::metrics::BuildInfo {
    hotline_server::metrics::BuildInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("HOTLINE_GIT_COMMIT").to_owned(),
        date: env!("HOTLINE_BUILD_DATE").to_owned(),
    }
}

fn run(config: Option<PathBuf>, log_level: hotline_server::admin::LogLevelHook) -> ExitCode {
    let compiled = match load(config.as_deref()) {
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
    tracing::info!(version = LONG_VERSION, "starting");
    {
        // Said once at start: a relative `[server.cdr] dir` (the embedded default's `./cdr`)
        // depends on where the switch was started.
        let d = &compiled.settings.cdr.dir;
        let abs = match std::env::current_dir() {
            Ok(cwd) if d.is_relative() => cwd
                .components()
                .chain(
                    d.components()
                        .filter(|c| *c != std::path::Component::CurDir),
                )
                .collect(),
            _ => d.clone(),
        };
        tracing::info!(
            "CDRs go to {} ([server.cdr] dir = {:?}{})",
            abs.display(),
            d.display().to_string(),
            if d.is_relative() {
                ", relative to the directory Hotline was started in"
            } else {
                ""
            }
        );
    }
    rt.block_on(async move {
        // Before anything listens: a SIGHUP (logrotate, an operator's reload) or SIGTERM that
        // arrives while the switch starts must be queued for the handler, not take the
        // default action, which kills the process.
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
        let options = hotline_server::Options {
            build: build_info(),
            log_level: Some(log_level),
        };
        let running = match hotline_server::start_with(compiled, config, options).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(1);
            }
        };
        signals.spawn(&running);
        running.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// SIGHUP reloads; SIGTERM and SIGINT stop taking calls, finish and flush. Installed before
/// the switch starts ([`Signals::install`]), served once it runs ([`Signals::spawn`]).
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    fn spawn(self, running: &hotline_server::Running) {
        let control = running.control();
        let Signals {
            mut hup,
            mut term,
            mut int,
        } = self;
        tokio::spawn(async move {
            loop {
                // `recv` is `None` only once the signal driver is gone: stop listening then
                // (selecting on a closed stream again would be ready at once, forever).
                tokio::select! {
                    s = hup.recv() => {
                        if s.is_none() {
                            return;
                        }
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        if control.send(hotline_server::Control::Reload(tx)).await.is_err() {
                            return;
                        }
                        let _ = rx.await;
                    }
                    s = term.recv() => {
                        if s.is_none() {
                            return;
                        }
                        tracing::info!("SIGTERM: finishing calls and stopping");
                        let _ = control.send(hotline_server::Control::Shutdown).await;
                    }
                    s = int.recv() => {
                        if s.is_none() {
                            return;
                        }
                        tracing::info!("SIGINT: finishing calls and stopping");
                        let _ = control.send(hotline_server::Control::Shutdown).await;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_carries_build_info() {
        assert!(LONG_VERSION.starts_with(env!("CARGO_PKG_VERSION")));
        assert!(LONG_VERSION.contains("commit "));
        let date = env!("HOTLINE_BUILD_DATE");
        assert_eq!(date.len(), 10, "{date}");
        assert!(date.starts_with("20"), "{date}");
    }

    #[test]
    fn completions_render_for_every_shell() {
        use clap::ValueEnum;
        for sh in clap_complete::Shell::value_variants() {
            let mut out = Vec::new();
            clap_complete::generate(*sh, &mut Cli::command(), "hotline", &mut out);
            let text = String::from_utf8_lossy(&out);
            assert!(text.contains("explain"), "{sh}: no subcommands");
        }
    }

    #[test]
    fn check_exit_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(check(&dir.path().join("missing.toml")), ExitCode::from(2));
        let bad = dir.path().join("bad.toml");
        let good = dir.path().join("good.toml");
        let _ = std::fs::write(&bad, "[server]\nlisten = 5\n");
        let _ = std::fs::write(&good, hotline_config::DEFAULT_CONFIG);
        assert_eq!(check(&bad), ExitCode::from(1));
        assert_eq!(check(&good), ExitCode::SUCCESS);
    }
}
