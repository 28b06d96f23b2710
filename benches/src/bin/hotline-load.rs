//! `hotline-load`: SIP load generator for Hotline (loopback only). See benches/src/load.
//!
//! ```text
//! hotline-load config --listen 127.0.0.1:5060 --uas 127.0.0.1:5070 --cdr-dir /tmp/cdr > load.toml
//! hotline-load uas --listen 127.0.0.1:5070 --threads 2 --duration 600
//! hotline-load uac --target 127.0.0.1:5060 --scenario basic --rate 2000 --duration 20 --hold 1
//! hotline-load both --target 127.0.0.1:5060 --uas 127.0.0.1:5070 --scenario hunt486 --rate 500 --calls 5000
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use hotline_benches::load::{self, uac, uas, Scenario, SipTimers};

#[derive(Parser)]
#[command(
    name = "hotline-load",
    about = "SIP load generator for Hotline (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a Hotline config that routes every scenario's number to a UAS.
    Config {
        #[arg(long, default_value = "127.0.0.1:5060")]
        listen: SocketAddr,
        /// The UAS that answers (and, unless given below, rings and answers busy too).
        #[arg(long, default_value = "127.0.0.1:5070")]
        uas: SocketAddr,
        /// A separate UAS for the busy target (SIPp: benches/sipp/uas_busy.xml).
        #[arg(long)]
        uas_busy: Option<SocketAddr>,
        /// A separate UAS for the ring-only targets (SIPp: benches/sipp/uas_ring.xml).
        #[arg(long)]
        uas_ring: Option<SocketAddr>,
        /// Targets are reached over TCP.
        #[arg(long)]
        tcp: bool,
        #[arg(long, default_value = "./cdr")]
        cdr_dir: String,
        /// Ring timeout of the unanswered first target in the noanswer scenario (ms).
        #[arg(long, default_value_t = 300)]
        noanswer_ring_ms: u64,
    },
    /// Run the callee side until the duration ends or the process is killed.
    Uas(UasArgs),
    /// Run the caller side and print the report.
    Uac(UacArgs),
    /// Run both in one process.
    Both {
        #[command(flatten)]
        uac: UacArgs,
        #[arg(long, default_value = "127.0.0.1:5070")]
        uas: SocketAddr,
        #[arg(long, default_value_t = 1)]
        uas_threads: usize,
    },
}

#[derive(Args)]
struct UasArgs {
    #[arg(long, default_value = "127.0.0.1:5070")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds to run (0 = until killed).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    #[arg(long, default_value_t = 500)]
    t1_ms: u64,
}

#[derive(Args, Clone)]
struct UacArgs {
    /// Hotline's address.
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: SocketAddr,
    /// basic | hunt486 | noanswer | simring
    #[arg(long, default_value = "basic")]
    scenario: String,
    /// Dial this number instead of the scenario's.
    #[arg(long)]
    number: Option<String>,
    /// Calls per second (open loop).
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Stop after this many calls.
    #[arg(long)]
    calls: Option<u64>,
    /// Stop starting calls after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Call hold time (200 → BYE), seconds.
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
    /// Worker threads (each with its own socket / connection).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    #[arg(long)]
    tcp: bool,
    #[arg(long, default_value_t = 500)]
    t1_ms: u64,
    /// A call not answered this many seconds after its INVITE counts as failed.
    #[arg(long, default_value_t = 8.0)]
    setup_timeout: f64,
    /// Progress line every second on stderr.
    #[arg(long)]
    progress: bool,
}

fn timers(t1_ms: u64) -> SipTimers {
    SipTimers {
        t1: Duration::from_millis(t1_ms.max(1)),
        t2: Duration::from_secs(4).max(Duration::from_millis(t1_ms.max(1))),
    }
}

fn secs(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what}: not a valid number of seconds"))
}

fn uac_opts(a: &UacArgs) -> Result<uac::UacOpts, String> {
    let scenario = Scenario::parse(&a.scenario).ok_or_else(|| {
        format!(
            "unknown scenario {:?} (basic, hunt486, noanswer, simring)",
            a.scenario
        )
    })?;
    load::check_loopback(a.target)?;
    if a.calls.is_none() && a.duration <= 0.0 {
        return Err("give --calls or a --duration > 0".into());
    }
    Ok(uac::UacOpts {
        target: a.target,
        tcp: a.tcp,
        threads: a.threads,
        rate: a.rate,
        calls: a.calls,
        duration: if a.duration > 0.0 {
            secs(a.duration, "duration")?
        } else {
            Duration::from_secs(86_400)
        },
        hold: secs(a.hold, "hold")?,
        scenario,
        number: a
            .number
            .clone()
            .unwrap_or_else(|| scenario.number().to_string()),
        timers: timers(a.t1_ms),
        setup_timeout: secs(a.setup_timeout, "setup-timeout")?,
        progress: a.progress,
    })
}

fn run_uac(o: &uac::UacOpts) -> Result<uac::UacReport, String> {
    eprintln!(
        "hotline-load uac: {} {} to {} at {} CPS, hold {:.1} s, {} threads",
        o.scenario,
        if o.tcp { "TCP" } else { "UDP" },
        o.target,
        o.rate,
        o.hold.as_secs_f64(),
        o.threads
    );
    let r = uac::run(o).map_err(|e| format!("uac: {e}"))?;
    println!("{}", r.table());
    println!("{}", r.result_line());
    Ok(r)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res: Result<(), String> = match cli.cmd {
        Cmd::Config {
            listen,
            uas,
            uas_busy,
            uas_ring,
            tcp,
            cdr_dir,
            noanswer_ring_ms,
        } => {
            let addrs = load::UasAddrs {
                answer: uas,
                busy: uas_busy.unwrap_or(uas),
                ring: uas_ring.unwrap_or(uas),
            };
            [listen, addrs.answer, addrs.busy, addrs.ring]
                .into_iter()
                .try_for_each(load::check_loopback)
                .map(|()| {
                    print!(
                        "{}",
                        load::config_toml(
                            listen,
                            addrs,
                            tcp,
                            &cdr_dir,
                            Duration::from_millis(noanswer_ring_ms)
                        )
                    );
                })
        }
        Cmd::Uas(a) => (|| {
            let u = uas::start(&uas::UasOpts {
                listen: a.listen,
                threads: a.threads,
                timers: timers(a.t1_ms),
            })
            .map_err(|e| format!("uas: {e}"))?;
            eprintln!("hotline-load uas: listening udp+tcp {}", u.local);
            let until = (a.duration > 0)
                .then(|| std::time::Instant::now() + Duration::from_secs(a.duration));
            loop {
                std::thread::sleep(Duration::from_millis(200));
                if until.is_some_and(|t| std::time::Instant::now() >= t) {
                    break;
                }
            }
            let stats = u.stop();
            println!("{}", stats.summary());
            Ok(())
        })(),
        Cmd::Uac(a) => uac_opts(&a).and_then(|o| run_uac(&o)).map(|_| ()),
        Cmd::Both {
            uac: a,
            uas: uas_addr,
            uas_threads,
        } => (|| {
            let o = uac_opts(&a)?;
            let u = uas::start(&uas::UasOpts {
                listen: uas_addr,
                threads: uas_threads,
                timers: o.timers,
            })
            .map_err(|e| format!("uas: {e}"))?;
            let r = run_uac(&o);
            // Let the last ACKs / BYE answers land before stopping the UAS.
            std::thread::sleep(Duration::from_millis(200));
            println!("{}", u.stop().summary());
            r.map(|_| ())
        })(),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotline-load: {e}");
            ExitCode::from(2)
        }
    }
}
