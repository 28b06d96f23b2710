//! Fuzz harness for `hotline-config`, shared by the cargo-fuzz target
//! (`fuzz_targets/config_compile.rs`) and the stable replay test (`tests/replay.rs`).
//!
//! Owns: the properties checked when compiling hostile config text. Must not: read files
//! (inputs that could name a file — a `path` key, or a TOML unicode escape that could spell
//! one — are skipped, so the fuzzer never reads `/dev/zero` through `[calendar] path`).
//!
//! Properties of [`config_compile`]:
//! - `from_toml_str` never panics, on any text;
//! - an `Err` holds at least one error, each with a message, a line inside the text (or 0),
//!   and a `Display` that names the file;
//! - an `Ok` is deterministic (compiling again gives the same table hash and size), has a
//!   listen address, every number has a company, and no target's URI calls an international
//!   or premium-rate number (`hotline_route::uri_user_allowed`: the toll-fraud rule).
//!
//! # Layout
//! - [`config_compile`]: the harness; [`seeds`]: the shipped example configs and snippets.
#![forbid(unsafe_code)]

use hotline_config::from_toml_str;

/// Could this text make the compiler read a file? (`[calendar] path`, possibly spelled with
/// escapes in a quoted key.)
fn may_read_files(text: &str) -> bool {
    text.contains("path") || text.contains("\\u") || text.contains("\\U")
}

/// The user part of `sip:user@host...` (empty when there is none).
fn uri_user(uri: &str) -> &str {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    rest.split_once('@').map_or("", |(u, _)| u)
}

/// Compile arbitrary bytes (lossy UTF-8) as a config file and check the properties above.
pub fn config_compile(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if may_read_files(&text) {
        return;
    }
    let lines = text.lines().count() + 1;
    match from_toml_str(&text, "fuzz.toml", 1, jiff::civil::date(2026, 11, 24)) {
        Err(errs) => {
            assert!(!errs.is_empty(), "an Err without errors");
            for e in errs.iter() {
                assert!(!e.message.is_empty(), "error without a message: {e:?}");
                assert!(
                    e.line <= lines,
                    "line {} past the end ({lines}): {e:?}",
                    e.line
                );
                assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
            }
            let _ = errs.to_string();
        }
        Ok(c) => {
            assert!(!c.settings.listen.is_empty(), "no listen address");
            for t in c.table.targets() {
                assert!(!t.name.is_empty(), "a target without a name");
                assert!(!t.uri.is_empty(), "target {} without a URI", t.name);
                // Toll fraud: no compiled target calls abroad or a premium-rate number.
                let user = uri_user(&t.uri);
                assert!(
                    hotline_route::uri_user_allowed(user),
                    "target {} calls a forbidden number: {}",
                    t.name,
                    t.uri
                );
            }
            for n in c.table.numbers() {
                assert!(
                    !n.company.is_empty(),
                    "number {:?} without a company",
                    n.number
                );
            }
            for w in &c.warnings {
                let _ = w.to_string();
            }
            let again = from_toml_str(&text, "fuzz.toml", 1, jiff::civil::date(2026, 11, 24));
            match again {
                Ok(a) => {
                    assert_eq!(
                        a.table.hash(),
                        c.table.hash(),
                        "compile is not deterministic"
                    );
                    assert_eq!(a.table.len(), c.table.len());
                }
                Err(e) => panic!("compiled once, failed the second time: {e}"),
            }
        }
    }
}

pub mod seeds {
    //! The shipped example configs (`config/*.toml`, `config/companies/*.toml`) and a few
    //! snippets that reach each section.

    /// Shipped example configs, by name.
    pub const SHIPPED: &[(&str, &str)] = &[
        (
            "hotline.toml",
            include_str!("../../../../config/hotline.toml"),
        ),
        (
            "full-example.toml",
            include_str!("../../../../config/full-example.toml"),
        ),
        (
            "multi-company.toml",
            include_str!("../../../../config/multi-company.toml"),
        ),
        (
            "billing.toml",
            include_str!("../../../../config/billing.toml"),
        ),
        (
            "companies/acme.toml",
            include_str!("../../../../config/companies/acme.toml"),
        ),
        (
            "companies/beta.toml",
            include_str!("../../../../config/companies/beta.toml"),
        ),
    ];

    /// Small configs around the edges: trunks with CIDRs, a gateway target with a number,
    /// limits, an empty file, broken TOML.
    pub const SNIPPETS: &[&str] = &[
        "",
        "[server]\nlisten = [\"[::1]:5060\"]\n",
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"off\"\n[server.sip]\nt1 = \"100ms\"\nmax_message_bytes = 4096\ntcp_idle_timeout = \"2s\"\n[[server.trunks]]\nname = \"ct\"\nsources = [\"10.0.0.0/8\", \"::1/128\"]\ntrusted = false\n",
        "[companies.a]\nname = \"A\"\n[targets.t]\nuri = \"sip:1001@127.0.0.1:5070\"\nmax_concurrent = 2\n[plans.p]\n[[plans.p.groups]]\nmode = \"simultaneous\"\nring_timeout = \"5s\"\nmembers = [\"t\"]\n[numbers.\"4008001234\"]\ncompany = \"a\"\nplan = \"p\"\n",
        "[gateways.gw]\nuri = \"sip:10.0.0.9:5060\"\n[targets.m]\nnumber = \"008613800138000\"\ngateway = \"gw\"\n",
        "[targets.x]\nuri = \"sip:1001@example.com\"\n[targets.x]\n",
        "[server\nlisten = ",
    ];
}
