//! Stable-toolchain fuzzing of config compile: the harness runs over the shipped configs and
//! snippets, over `corpus/config_compile` and `artifacts/config_compile` (when present), then
//! over random mutations until a time budget is spent.
//!
//! `cargo test --release --manifest-path crates/config/fuzz/Cargo.toml` (tests/run.sh does it).
//! Environment: `FUZZ_REPLAY_SECS` (default 3), `FUZZ_SEED` (default time-based, printed).

use std::path::Path;
use std::time::{Duration, Instant};

use hotline_config_fuzz::config_compile;
use hotline_config_fuzz::seeds::{SHIPPED, SNIPPETS};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "\n",
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    ",",
    ".",
    "#",
    "{",
    "}",
    "\"\"\"",
    "0",
    "-1",
    "4294967296",
    "1e99",
    "true",
    "inf",
    "nan",
    "\"0s\"",
    "\"99999999h\"",
    "\"25:00-26:00\"",
    "\"mon-sun\"",
    "\"2026-02-30\"",
    "\"sip:1001@127.0.0.1:0\"",
    "\"sip:@[::1]\"",
    "\"::/0\"",
    "\"10.0.0.0/33\"",
    "\"4008001234\"",
    "\"0044123456789\"",
    "members = []",
    "plan = \"p\"",
    "[numbers.\"4000000000\"]",
    "[plans.p]",
    "[[plans.p.groups]]",
    "[targets.t]",
    "weight = 0",
    "ring_timeout = \"0s\"",
    "max_concurrent = 0",
    "status = \"suspended\"",
    "rules = [{}]",
];

fn mutate(rng: &mut Rng, s: &mut Vec<u8>, pool: &[Vec<u8>]) {
    let n = s.len();
    match rng.below(6) {
        0 if n > 0 => {
            let i = rng.below(n);
            s[i] = rng.next() as u8;
        }
        1 => {
            let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let i = rng.below(n + 1);
            s.splice(i..i, t.iter().copied());
        }
        2 if n > 0 => {
            let a = rng.below(n);
            let len = rng.below((n - a).min(80) + 1);
            s.drain(a..a + len);
        }
        3 if n > 0 => {
            // Duplicate a line (repeated keys and tables).
            let a = rng.below(n);
            let start = s[..a]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = s[a..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(n, |p| a + p + 1);
            let line = s[start..end].to_vec();
            s.splice(end..end, line);
        }
        4 if !pool.is_empty() => {
            let o = &pool[rng.below(pool.len())];
            if !o.is_empty() {
                let a = rng.below(o.len());
                let len = rng.below((o.len() - a).min(400) + 1);
                let at = rng.below(n + 1);
                s.splice(at..at, o[a..a + len].iter().copied());
            }
        }
        _ if n > 1 => s.truncate(rng.below(n)),
        _ => s.push(rng.next() as u8),
    }
}

#[test]
fn config_compile_replay() {
    let budget = std::env::var("FUZZ_REPLAY_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pool: Vec<Vec<u8>> = SHIPPED
        .iter()
        .map(|(_, t)| t.as_bytes().to_vec())
        .chain(SNIPPETS.iter().map(|t| t.as_bytes().to_vec()))
        .collect();
    for dir in ["corpus", "artifacts"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir).join("config_compile")) {
            pool.extend(rd.flatten().filter_map(|e| std::fs::read(e.path()).ok()));
        }
    }
    for p in &pool {
        config_compile(p);
    }
    let mut rng = Rng(seed.max(1));
    let start = Instant::now();
    let mut execs = 0u64;
    while start.elapsed() < Duration::from_secs_f64(budget.max(0.0)) {
        let mut input = pool[rng.below(pool.len())].clone();
        for _ in 0..rng.below(5) + 1 {
            mutate(&mut rng, &mut input, &pool);
        }
        let keep = input.clone();
        if std::panic::catch_unwind(|| config_compile(&input)).is_err() {
            let dir = root.join("artifacts").join("config_compile");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("replay-crash-{seed}-{execs}"));
            let _ = std::fs::write(&path, &keep);
            panic!(
                "config_compile failed (FUZZ_SEED={seed}), input saved to {}",
                path.display()
            );
        }
        execs += 1;
    }
    eprintln!(
        "config_compile: {} seeds, {execs} random execs in {:?} (FUZZ_SEED={seed})",
        pool.len(),
        start.elapsed()
    );
}

/// Every shipped example config compiles (the seeds are meaningful, not all rejected early).
#[test]
fn shipped_examples_compile() {
    for (name, text) in SHIPPED {
        if text.contains("include") || *name == "billing.toml" || name.starts_with("companies/") {
            continue; // Needs load_path (include) or is not a routing config.
        }
        let r = hotline_config::from_toml_str(text, name, 1, jiff::civil::date(2026, 11, 24));
        assert!(
            r.is_ok(),
            "{name}: {}",
            r.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

/// Toll fraud: a target that dials abroad must be refused whatever form it is written in.
/// The `number` + `gateway` form is checked; the `uri` form is not.
#[test]
fn international_uri_target_is_refused() {
    for user in ["00442079460000", "+442079460000", "0085212345678"] {
        let text = format!(
            "[companies.a]\nname = \"A\"\n[targets.abroad]\nuri = \"sip:{user}@10.0.0.9:5060\"\n\
             [plans.p]\n[[plans.p.groups]]\nmode = \"sequential\"\nmembers = [\"abroad\"]\n\
             [numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n"
        );
        assert!(
            hotline_config::from_toml_str(&text, "t.toml", 1, jiff::civil::date(2026, 11, 24)).is_err(),
            "international target {user} accepted"
        );
    }
}

/// A TOML syntax error is reported with a message `hotline check` can show.
#[test]
fn toml_syntax_error_has_a_message() {
    for text in [
        "[server]\nlisten = \n",
        "# Amounts \u{e} are in yuan\n[server]\n",
    ] {
        match hotline_config::from_toml_str(text, "x.toml", 1, jiff::civil::date(2026, 11, 24)) {
            Ok(_) => panic!("{text:?} is not valid TOML"),
            Err(e) => {
                for err in e.iter() {
                    assert!(!err.message.is_empty(), "{text:?}: empty message: {err:?}");
                }
            }
        }
    }
}

/// The `number` + `gateway` form refuses international numbers (the guarantee that holds).
#[test]
fn international_gateway_target_is_refused() {
    let text = "[companies.a]\nname = \"A\"\n[gateways.gw]\naddress = \"10.0.0.9:5060\"\n\
                [targets.abroad]\nnumber = \"00442079460000\"\ngateway = \"gw\"\n\
                [plans.p]\n[[plans.p.groups]]\nmode = \"sequential\"\nmembers = [\"abroad\"]\n\
                [numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n";
    match hotline_config::from_toml_str(text, "t.toml", 1, jiff::civil::date(2026, 11, 24)) {
        Ok(_) => panic!("international gateway target accepted"),
        Err(e) => assert!(e.to_string().contains("international"), "{e}"),
    }
}
