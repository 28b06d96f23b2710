//! Time `hotline_config::from_toml_str` on the generated realistic table (benches/src/fixtures.rs).
//! `cargo run --release -p hotline-benches --example compile_probe -- 100000`
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20000);
    let src = hotline_benches::fixtures::table_toml(hotline_benches::fixtures::TableShape {
        numbers: n,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    let r = hotline_config::from_toml_str(&src, "big.toml", 1, jiff::civil::date(2026, 11, 24));
    println!("{n} numbers: {:?} ok={}", t.elapsed(), r.is_ok());
    if let Err(e) = r {
        println!(
            "{}",
            e.to_string().lines().take(3).collect::<Vec<_>>().join("\n")
        );
    }
}
