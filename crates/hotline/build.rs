//! Build info for `hotline --version`: the git commit (or `unknown` without a `.git`, e.g. in
//! a source tarball) and the build date (UTC, or `SOURCE_DATE_EPOCH` for reproducible builds).
//! No network, no extra crates.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

// The workspace's one copy of the day arithmetic (the CDR crate's); `days_from_civil` is unused here.
#[allow(dead_code)]
#[path = "../cdr/src/civil.rs"]
mod civil;
use civil::civil_from_days;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HOTLINE_GIT_COMMIT={commit}");

    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    println!("cargo:rustc-env=HOTLINE_BUILD_DATE={y:04}-{m:02}-{d:02}");

    // Rebuild the info when HEAD moves; only name files that exist (a missing path would make
    // cargo rerun this script on every build).
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../cdr/src/civil.rs");
    let git = Path::new("../../.git");
    for f in ["HEAD", "index"] {
        let p = git.join(f);
        if p.exists() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}
