//! Where things are: the workspace root, SIPp scenarios and the `hotline` binary.
//!
//! The binary is found next to the running test executable (`target/<profile>/hotline`, the
//! test itself lives in `target/<profile>/deps/`), which follows `CARGO_TARGET_DIR` and the
//! profile without guessing. Before first use it is (re)built once per test process with
//! `cargo build -p hotline`, so a test never runs against a stale binary. `HOTLINE_BIN` overrides
//! the path (and skips the build); `HOTLINE_NO_BUILD=1` skips the build only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Result, TestkitError};

/// The workspace root (the directory holding the virtual `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}

/// The directory holding the SIPp scenario files (`tests/sipp`).
pub fn sipp_dir() -> PathBuf {
    workspace_root().join("tests").join("sipp")
}

/// Path of a scenario in `tests/sipp`; `name` may omit the `.xml` suffix.
pub fn scenario(name: &str) -> PathBuf {
    if name.ends_with(".xml") {
        sipp_dir().join(name)
    } else {
        sipp_dir().join(format!("{name}.xml"))
    }
}

/// `target/<profile>` of the running test executable.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| TestkitError::io("current_exe", e))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| TestkitError::NoBinary(format!("{} has no parent", exe.display())))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            dir = up.to_path_buf();
        }
    }
    Ok(dir)
}

/// Upper bound for the one `cargo build -p hotline` a test process may run.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn build_hotline(profile_dir: &Path) -> std::result::Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("-p")
        .arg("hotline")
        .arg("--bin")
        .arg("hotline")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let mut child = cmd.spawn().map_err(|e| format!("spawn cargo: {e}"))?;
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let status = crate::hotline::wait_timeout(&mut child, BUILD_TIMEOUT)
        .map_err(|e| format!("waiting for cargo build: {e}"))?;
    let text = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("cargo build -p hotline failed ({s}):\n{text}")),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "cargo build -p hotline took over {BUILD_TIMEOUT:?}"
            ))
        }
    }
}

/// Path of the `hotline` binary, built (once per process) if needed. See the module docs.
pub fn hotline_bin() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("HOTLINE_BIN") {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(format!("HOTLINE_BIN={} is not a file", p.display()))
            };
        }
        let dir = profile_dir().map_err(|e| e.to_string())?;
        let bin = dir.join(format!("hotline{}", std::env::consts::EXE_SUFFIX));
        if std::env::var_os("HOTLINE_NO_BUILD").is_none() {
            build_hotline(&dir)?;
        }
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{} does not exist", bin.display()))
        }
    })
    .clone()
    .map_err(TestkitError::NoBinary)
}
