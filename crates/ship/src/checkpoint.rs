//! The shipper's saved position: one small JSON file, replaced atomically (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory) at most every 100 ms while
//! acks come in, so after a crash it names records the stream has acknowledged, never more.
//!
//! ```json
//! {"v":1,"node":"sh-01","stream":"CDR","call":{"file":"calls-20261124T10.csv","offset":123456},
//!  "attempt":{"file":"attempts-20261124T10.csv","offset":98765},"saved_at":"2026-11-24T10:00:00.123+00:00"}
//! ```

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cursor::Position;

/// What the checkpoint file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub v: u32,
    /// The node the positions were shipped as (a change of node name is logged: ids change).
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub call: Position,
    #[serde(default)]
    pub attempt: Position,
    #[serde(default)]
    pub saved_at: String,
}

/// Read the checkpoint; a missing file is the start (everything is shipped).
pub fn load(path: &Path) -> io::Result<Option<Checkpoint>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replace the checkpoint atomically and durably.
pub fn save(path: &Path, cp: &Checkpoint) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(cp).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("ship.checkpoint");
        assert!(matches!(load(&p), Ok(None)));
        let cp = Checkpoint {
            v: 1,
            node: "n1".into(),
            stream: "CDR".into(),
            call: Position {
                file: "calls-20261124T10.csv".into(),
                offset: 42,
            },
            attempt: Position::default(),
            saved_at: String::new(),
        };
        assert!(save(&p, &cp).is_ok());
        assert_eq!(load(&p).ok().flatten(), Some(cp));
        assert!(!p.with_extension("tmp").exists());
        let _ = fs::write(&p, b"{not json");
        assert!(load(&p).is_err());
    }
}
