//! Writes the seed corpus into `corpus/config_compile/` (run by tests/fuzz.sh before libFuzzer
//! starts). Usage: `write_seeds [DIR]` (default `corpus`).

use hotline_config_fuzz::seeds::{SHIPPED, SNIPPETS};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let d = std::path::Path::new(&dir).join("config_compile");
    std::fs::create_dir_all(&d)?;
    let all = SHIPPED
        .iter()
        .map(|(_, t)| *t)
        .chain(SNIPPETS.iter().copied());
    let mut n = 0;
    for (i, text) in all.enumerate() {
        std::fs::write(d.join(format!("seed-{i:03}")), text)?;
        n += 1;
    }
    println!("{}: {n} seeds", d.display());
    Ok(())
}
