//! Reload when the config files change: a cheap poll of modification times (no inotify
//! dependency; a config change is picked up within one poll interval).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::Control;

/// Fingerprint of every `.toml` file the config may consist of: the file itself and the
/// files beside and below it (includes are relative to the main file's directory).
pub fn fingerprint(source: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let root = if source.is_dir() {
        source.to_path_buf()
    } else {
        source
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let mut out = Vec::new();
    walk(&root, 0, &mut out);
    if source.is_file() {
        push(source, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn push(p: &Path, out: &mut Vec<(PathBuf, SystemTime, u64)>) {
    if let Ok(m) = std::fs::metadata(p) {
        let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        out.push((p.to_path_buf(), mtime, m.len()));
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, SystemTime, u64)>) {
    if depth > 3 {
        return;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            push(&p, out);
        }
    }
}

/// Poll `source` every `every` and ask the core to reload when a file changed. A failed
/// reload is logged by the core and keeps the running config.
pub fn spawn(source: PathBuf, every: Duration, control: mpsc::Sender<Control>) {
    tokio::spawn(async move {
        let mut last = fingerprint(&source);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = fingerprint(&source);
            if now == last {
                continue;
            }
            last = now;
            tracing::info!(path = %source.display(), "config files changed: reloading");
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Reload(tx)).await.is_err() {
                return;
            }
            let _ = rx.await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_when_a_file_changes() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let main = dir.path().join("hotline.toml");
        std::fs::write(&main, "a = 1\n")?;
        std::fs::create_dir(dir.path().join("companies"))?;
        std::fs::write(dir.path().join("companies/acme.toml"), "b = 1\n")?;
        let before = fingerprint(&main);
        assert_eq!(before.len(), 2);
        assert_eq!(before, fingerprint(&main), "stable when nothing changed");
        std::fs::write(dir.path().join("companies/acme.toml"), "b = 22\n")?;
        assert_ne!(before, fingerprint(&main), "an included file changed");
        let d1 = fingerprint(dir.path());
        std::fs::write(dir.path().join("companies/new.toml"), "c = 1\n")?;
        assert_ne!(d1, fingerprint(dir.path()), "a file was added");
        Ok(())
    }
}
