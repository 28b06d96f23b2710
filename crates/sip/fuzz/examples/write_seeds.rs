//! Writes the seed corpus of every target into `corpus/<target>/` (run by tests/fuzz.sh before
//! libFuzzer starts). Usage: `write_seeds [DIR]` (default `corpus`).

use std::path::Path;

fn write(dir: &Path, target: &str, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(d.join(format!("seed-{i:03}")), s)?;
    }
    println!("{}: {} seeds", d.display(), seeds.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "corpus".into());
    let dir = Path::new(&dir);
    let messages: Vec<Vec<u8>> = hotline_sip_fuzz::seeds::messages()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    write(dir, "frame_parse", &messages)?;
    write(dir, "rewrite", &messages)?;
    write(dir, "stream_split", &hotline_sip_fuzz::seeds::streams())?;
    write(dir, "proxy", &hotline_sip_fuzz::seeds::proxy_scripts())?;
    Ok(())
}
