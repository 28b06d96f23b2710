//! The testkit's config template compiles with Hotline's own config compiler, so a schema change
//! shows up here (with the compiler's message) rather than as a Hotline that will not start.

use hotline_e2e::*;

fn compile(toml: &str) -> Result<(), String> {
    let toml = toml.replace(
        hotline_testkit::hotline::CDR_DIR_PLACEHOLDER,
        "/tmp/hotline-e2e-cdr",
    );
    hotline_config::from_toml_str(&toml, "template.toml", 1, jiff::civil::date(2026, 11, 24))
        .map(|_| ())
        .map_err(|e| format!("{e}\n--- config ---\n{toml}"))
}

#[test]
fn template_with_hunt_suspended_number_and_timers_compiles() {
    let toml = HotlineConfig::new()
        .t1("100ms")
        .ring_timeout("2s")
        .target("a", "sip:1001@127.0.0.1:5070")
        .target("b", "sip:1002@127.0.0.1:5071;transport=tcp")
        .target_limited("c", "sip:1003@127.0.0.1:5072", 1)
        .number(NUMBER, &["a", "b", "c"])
        .number("4008005555", &["a"])
        .suspended()
        .to_toml();
    if let Err(e) = compile(&toml) {
        panic!("template does not compile: {e}");
    }
}

#[test]
fn template_is_checked_by_the_compiler() {
    // A number hunting an undefined target must be rejected: proves the test above is not
    // vacuous (the compiler really validates what the template writes).
    let toml = HotlineConfig::new().number(NUMBER, &["missing"]).to_toml();
    assert!(compile(&toml).is_err());
}
