//! [`Usage`]: what a process holds and has spent, read from `/proc/PID` — CPU time (user +
//! system, all threads), threads, open file descriptors and resident memory — so a test can
//! check that a server that has gone quiet is idle, the way it checks a call.

use std::time::{Duration, Instant};

/// One sample of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// When the sample was taken.
    pub at: Instant,
    /// utime + stime of every thread, in clock ticks (`/proc/PID/stat` fields 14 and 15).
    pub cpu_ticks: u64,
    /// Threads (`/proc/PID/stat` field 20).
    pub threads: u64,
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: u64,
    /// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub rss_kib: u64,
}

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`): 100 on every Linux build the
/// tests run on; `getconf CLK_TCK` says otherwise where it can be run.
pub fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The fields of a `/proc/PID/stat` line that [`Usage`] keeps: (utime + stime, threads).
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state): field n is rest's (n - 3)th word.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(14 - 3)?.parse().ok()?;
    let stime: u64 = f.get(15 - 3)?.parse().ok()?;
    let threads: u64 = f.get(20 - 3)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// Reads one [`Usage`] sample of `pid`; `None` if the process is gone or `/proc` unreadable.
pub fn usage(pid: u32) -> Option<Usage> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (cpu_ticks, threads) = parse_stat(&stat)?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = crate::hotline::parse_vm_rss(&status)?;
    Some(Usage {
        at,
        cpu_ticks,
        threads,
        fds,
        rss_kib,
    })
}

impl Usage {
    /// CPU used between `earlier` and `self`, as a fraction of one core.
    pub fn cpu_since(&self, earlier: &Usage) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        let ticks = self.cpu_ticks.saturating_sub(earlier.cpu_ticks) as f64;
        ticks / ticks_per_second() as f64 / wall
    }
}

/// What each open fd of `pid` is (`/proc/PID/fd/N` link targets, e.g. `socket:[1234]`,
/// `/tmp/x/cdr/calls-....csv.open`), sorted: for a failure message that says what leaked.
pub fn fd_targets(pid: u32) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Two samples `window` apart.
pub fn sample_pair(pid: u32, window: Duration) -> Option<(Usage, Usage)> {
    let a = usage(pid)?;
    std::thread::sleep(window);
    let b = usage(pid)?;
    Some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as `(hotline-shard) x)` could be.
        let line = "4242 (a b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    120 35 0 0 20 0 7 0 12345 1000000 250 18446744073709551615";
        assert_eq!(parse_stat(line), Some((155, 7)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let u = usage(std::process::id());
        let u = u.expect("own /proc entry readable");
        assert!(u.threads >= 1 && u.fds >= 3 && u.rss_kib > 0, "{u:?}");
    }
}
