//! The config files as the API sees them.
//!
//! A company's file is the config file that declares `[companies.<id>]` (with the shipped
//! layout, `companies/<id>.toml` included by `hotline.toml`). The API writes only that file,
//! and only the company's own entries in it: its targets, plans, lists and the `numbers`
//! tables of its numbers that are in the file. An edit is checked by compiling every config
//! file with the edited text in place of the old (the same compiler as `hotline check`), then
//! written atomically (temporary file in the same directory, fsync, rename, fsync of the
//! directory), so the file on disk is always either the old or the new text, never a part.

use std::io::Write;
use std::path::{Path, PathBuf};

use hotline_config::Source;
use sha2::{Digest, Sha256};
use toml_edit::DocumentMut;

use crate::model::FieldError;

/// The loaded config files.
pub struct Loaded {
    pub sources: Vec<Source>,
}

/// A company's file, parsed for editing.
pub struct CompanyFile {
    /// Index in `Loaded::sources`.
    pub index: usize,
    pub path: PathBuf,
    pub doc: DocumentMut,
    pub etag: String,
    /// Other companies declared in the same file (empty with one file per company).
    pub shared_with: String,
}

/// The file's ETag: the first 16 bytes of its SHA-256, hex, quoted.
pub fn etag(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// What went wrong reading or checking the files.
#[derive(Debug)]
pub enum StoreError {
    /// Unreadable files / the running config has errors outside this company's file.
    Broken(String),
    NoCompany,
    /// The company's file declares other companies too: only the operator may edit it (a
    /// company could otherwise change the others' targets and plans in it).
    Shared(String),
    /// The edit does not compile: the errors in the company's file (others are summarised).
    Invalid(Vec<FieldError>),
    Io(String),
}

pub fn load(root: &Path) -> Result<Loaded, StoreError> {
    let (sources, _) =
        hotline_config::load_sources(root).map_err(|e| StoreError::Broken(e.to_string()))?;
    Ok(Loaded { sources })
}

impl Loaded {
    /// Company ids declared in each file: `(id, file index)`.
    pub fn companies(&self) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            let Ok(t) = toml::from_str::<toml::Table>(&s.text) else {
                continue;
            };
            if let Some(c) = t.get("companies").and_then(|c| c.as_table()) {
                for k in c.keys() {
                    out.push((k.clone(), i));
                }
            }
        }
        out
    }

    pub fn company_file(&self, company: &str) -> Result<CompanyFile, StoreError> {
        let all = self.companies();
        let index = all
            .iter()
            .find(|(c, _)| c == company)
            .map(|(_, i)| *i)
            .ok_or(StoreError::NoCompany)?;
        let s = &self.sources[index];
        let doc: DocumentMut = s
            .text
            .parse()
            .map_err(|e| StoreError::Broken(format!("{}: {e}", s.name)))?;
        let others: Vec<&str> = all
            .iter()
            .filter(|(c, i)| *i == index && c != company)
            .map(|(c, _)| c.as_str())
            .collect();
        Ok(CompanyFile {
            index,
            path: PathBuf::from(&s.name),
            doc,
            etag: etag(&s.text),
            shared_with: others.join(", "),
        })
    }

    /// Every file parsed as plain TOML (for views): `(file name, table)`.
    pub fn tables(&self) -> Vec<(String, toml::Table)> {
        self.sources
            .iter()
            .filter_map(|s| {
                toml::from_str::<toml::Table>(&s.text)
                    .ok()
                    .map(|t| (s.name.clone(), t))
            })
            .collect()
    }

    /// Compile the config with file `index` replaced by `text`. Errors in that file come back
    /// with their key paths; errors elsewhere are not the company's to see (they belong to
    /// other companies or to ops): only how many there are.
    pub fn check(&self, index: usize, text: &str) -> Result<(), StoreError> {
        let mut sources = self.sources.clone();
        sources[index].text = text.to_string();
        let Err(errs) = hotline_config::compile_loaded(&sources, 0, jiff::Zoned::now().date())
        else {
            return Ok(());
        };
        let mine = &sources[index].name;
        let mut out: Vec<FieldError> = Vec::new();
        let mut elsewhere = 0usize;
        for e in errs.iter() {
            if &e.file == mine {
                out.push(FieldError {
                    path: e.key.clone(),
                    message: e.message.clone(),
                    hint: e.hint.clone(),
                    file: Some(e.file.clone()),
                    line: (e.line > 0).then_some(e.line),
                });
            } else {
                elsewhere += 1;
            }
        }
        if elsewhere > 0 {
            out.push(FieldError::new(
                "",
                format!(
                    "the platform config has {elsewhere} error(s) outside this company's file; nothing was changed"
                ),
            )
            .hint("the operator must fix them (`hotline check`)"));
        }
        Err(StoreError::Invalid(out))
    }
}

/// Write `text` to `path` atomically: a temporary file beside it (same permissions), fsync,
/// rename over the old one, fsync the directory.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), StoreError> {
    let io =
        |what: &str, e: std::io::Error| StoreError::Io(format!("{what} {}: {e}", path.display()));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.api-{}.tmp", std::process::id()));
    let perms = std::fs::metadata(path).map(|m| m.permissions()).ok();
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| io("cannot create a temporary file for", e))?;
        if let Some(p) = perms {
            f.set_permissions(p)
                .map_err(|e| io("cannot set permissions for", e))?;
        }
        f.write_all(text.as_bytes())
            .map_err(|e| io("cannot write", e))?;
        f.sync_all().map_err(|e| io("cannot fsync", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io("cannot rename over", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Append one JSON line to the audit log and fsync it.
pub fn audit(path: &Path, line: &serde_json::Value) -> Result<(), String> {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut s = line.to_string();
    s.push('\n');
    f.write_all(s.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The audit entries of `company` (all for `None`), newest last, at most `limit`.
pub fn read_audit(path: &Path, company: Option<&str>, limit: usize) -> Vec<serde_json::Value> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let mut v: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            company.map_or(true, |c| {
                e.get("company").and_then(|x| x.as_str()) == Some(c)
            })
        })
        .collect();
    let cut = v.len().saturating_sub(limit);
    v.drain(..cut);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_keeps_mode() -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p = dir.path().join("acme.toml");
        std::fs::write(&p, "old\n").map_err(|e| e.to_string())?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640))
            .map_err(|e| e.to_string())?;
        write_atomic(&p, "new\n").map_err(|_| "write")?;
        assert_eq!(
            std::fs::read_to_string(&p).map_err(|e| e.to_string())?,
            "new\n"
        );
        let mode = std::fs::metadata(&p)
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        // A directory that cannot be written: the old file stays as it was.
        let missing = dir.path().join("nope").join("x.toml");
        assert!(write_atomic(&missing, "x").is_err());
        Ok(())
    }

    fn loaded(files: &[(&str, &str)]) -> Loaded {
        Loaded {
            sources: files
                .iter()
                .map(|(n, t)| Source {
                    name: n.to_string(),
                    text: t.to_string(),
                })
                .collect(),
        }
    }

    const MAIN: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\n";
    const ACME: &str = "[companies.acme]\n[targets.acme-t]\nuri = \"sip:1@127.0.0.1:5070\"\n\
        [plans.acme-p]\n[[plans.acme-p.groups]]\nmembers = [\"acme-t\"]\n\
        [numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"acme-p\"\n";

    #[test]
    fn check_shows_the_companys_errors_and_only_counts_the_others() {
        let broken_beta = "[companies.beta]\n[numbers.\"4006005678\"]\ncompany = \"beta\"\nplan = \"secret-plan\"\n";
        let l = loaded(&[
            ("main.toml", MAIN),
            ("acme.toml", ACME),
            ("beta.toml", broken_beta),
        ]);
        let bad = ACME.replace(
            "members = [\"acme-t\"]",
            "members = [\"acme-t\"]\nring_timeout = \"x\"",
        );
        let Err(StoreError::Invalid(errs)) = l.check(1, &bad) else {
            panic!("expected errors");
        };
        assert!(
            errs.iter()
                .any(|e| e.path.contains("ring_timeout") && e.line.is_some()),
            "{errs:?}"
        );
        let text = format!("{errs:?}");
        assert!(
            !text.contains("secret-plan"),
            "beta's error is not shown to acme: {text}"
        );
        assert!(text.contains("1 error(s) outside"), "{text}");
        let ok = loaded(&[("main.toml", MAIN), ("acme.toml", ACME)]);
        assert!(ok.check(1, ACME).is_ok());
    }

    #[test]
    fn a_file_of_two_companies_is_shared() -> Result<(), String> {
        let both = format!("{ACME}[companies.beta]\n");
        let l = loaded(&[("main.toml", MAIN), ("both.toml", &both)]);
        let cf = l.company_file("acme").map_err(|e| format!("{e:?}"))?;
        assert_eq!(cf.shared_with, "beta");
        let l = loaded(&[("main.toml", MAIN), ("acme.toml", ACME)]);
        assert_eq!(
            l.company_file("acme")
                .map_err(|e| format!("{e:?}"))?
                .shared_with,
            ""
        );
        assert!(matches!(l.company_file("nope"), Err(StoreError::NoCompany)));
        Ok(())
    }

    #[test]
    fn etag_is_content_hash() {
        assert_eq!(etag("a"), etag("a"));
        assert_ne!(etag("a"), etag("b"));
        assert_eq!(etag("a").len(), 34);
    }
}
