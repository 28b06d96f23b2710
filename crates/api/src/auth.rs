//! API tokens: `<id>.<secret>`; the token file keeps the id, who it is for and an argon2id
//! hash of the secret (never the secret). A check looks the id up and verifies the secret
//! (argon2 is slow on purpose; at most two verifications run at once, off the async
//! threads); a verified token is remembered for [`CACHE_FOR`] by the SHA-256 of the whole
//! token, so a console's requests do not each pay for argon2. Failed checks are counted per
//! client address: more than [`MAX_FAILURES`] in [`FAIL_WINDOW`] and that address gets 429
//! until the window ends. The token file is read again when its modification time changes
//! (a revoked token stops working within a request; cached entries are dropped then too).
//!
//! Token file (`[server.api] tokens`):
//!
//! ```toml
//! [[token]]
//! id = "acme-1"
//! company = "acme"
//! hash = "$argon2id$v=19$m=19456,t=2,p=1$..."
//!
//! [[token]]
//! id = "ops"
//! operator = true
//! hash = "$argon2id$..."
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

/// How long a verified token is trusted without argon2 again.
pub const CACHE_FOR: Duration = Duration::from_secs(300);
/// Failed checks per client address per window before 429.
pub const MAX_FAILURES: u32 = 10;
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator { token: String },
    Company { token: String, company: String },
}

impl Principal {
    pub fn token(&self) -> &str {
        match self {
            Principal::Operator { token } | Principal::Company { token, .. } => token,
        }
    }

    pub fn role(&self) -> &'static str {
        match self {
            Principal::Operator { .. } => "operator",
            Principal::Company { .. } => "company",
        }
    }

    pub fn company(&self) -> Option<&str> {
        match self {
            Principal::Operator { .. } => None,
            Principal::Company { company, .. } => Some(company),
        }
    }

    /// Whether this principal may act for `company`.
    pub fn may(&self, company: &str) -> bool {
        match self {
            Principal::Operator { .. } => true,
            Principal::Company { company: c, .. } => c == company,
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator { .. })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    id: String,
    #[serde(default)]
    company: Option<String>,
    #[serde(default)]
    operator: bool,
    hash: String,
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No or a malformed `Authorization: Bearer` header, unknown id, wrong secret.
    Unauthorized(String),
    /// Too many failures from this address; retry after this many seconds.
    Limited(u64),
    /// The token file cannot be read or is invalid (the operator must fix it).
    TokenFile(String),
}

struct Loaded {
    mtime: Option<SystemTime>,
    entries: HashMap<String, TokenEntry>,
}

pub struct Tokens {
    path: PathBuf,
    loaded: Mutex<Loaded>,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    verify: Semaphore,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read_file(path: &Path) -> Result<HashMap<String, TokenEntry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: TokenFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = HashMap::new();
    for (i, t) in f.token.into_iter().enumerate() {
        if t.operator == t.company.is_some() {
            return Err(format!(
                "{}: token[{i}] ({}): set either company = \"...\" or operator = true",
                path.display(),
                t.id
            ));
        }
        if PasswordHash::new(&t.hash).is_err() {
            return Err(format!(
                "{}: token[{i}] ({}): hash is not an argon2 PHC string (make one with `hotline api-token`)",
                path.display(),
                t.id
            ));
        }
        if out.contains_key(&t.id) {
            return Err(format!(
                "{}: token[{i}]: id {:?} is used twice",
                path.display(),
                t.id
            ));
        }
        out.insert(t.id.clone(), t);
    }
    Ok(out)
}

impl Tokens {
    /// Read the token file; an unreadable or invalid one is an error at start.
    pub fn load(path: PathBuf) -> Result<Tokens, String> {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let entries = read_file(&path)?;
        Ok(Tokens {
            path,
            loaded: Mutex::new(Loaded { mtime, entries }),
            cache: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verify: Semaphore::new(2),
        })
    }

    /// Re-read the file when it changed; a broken new file keeps the old tokens (logged).
    fn refresh(&self) -> Result<(), AuthError> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let mut l = lock(&self.loaded);
        if l.mtime == mtime {
            return Ok(());
        }
        match read_file(&self.path) {
            Ok(entries) => {
                l.entries = entries;
                l.mtime = mtime;
                lock(&self.cache).clear();
                tracing::info!(file = %self.path.display(), tokens = l.entries.len(), "API tokens reloaded");
                Ok(())
            }
            Err(e) => {
                l.mtime = mtime;
                tracing::error!(error = %e, "API token file not reloaded, the old tokens stay");
                Ok(())
            }
        }
    }

    fn limited(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let f = lock(&self.failures);
        let (since, n) = f.get(&ip)?;
        let left = FAIL_WINDOW.checked_sub(now.saturating_duration_since(*since))?;
        (*n >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    fn failed(&self, ip: IpAddr, now: Instant) {
        let mut f = lock(&self.failures);
        if f.len() > 10_000 {
            f.retain(|_, (since, _)| now.saturating_duration_since(*since) < FAIL_WINDOW);
        }
        let e = f.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= FAIL_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }

    /// Check `Authorization` (the header's value) from `ip`.
    pub async fn check(&self, header: Option<&str>, ip: IpAddr) -> Result<Principal, AuthError> {
        let now = Instant::now();
        if let Some(secs) = self.limited(ip, now) {
            return Err(AuthError::Limited(secs));
        }
        self.refresh()?;
        let fail = |why: &str| {
            self.failed(ip, now);
            Err(AuthError::Unauthorized(why.to_string()))
        };
        let Some(token) = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return fail("send Authorization: Bearer <token>");
        };
        let Some((id, secret)) = token.split_once('.') else {
            return fail("a token is <id>.<secret>");
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((p, at)) = lock(&self.cache).get(&digest) {
            if now.saturating_duration_since(*at) < CACHE_FOR {
                return Ok(p.clone());
            }
        }
        let entry = lock(&self.loaded).entries.get(id).cloned();
        let Some(entry) = entry else {
            return fail("unknown token");
        };
        let Ok(_permit) = self.verify.acquire().await else {
            return Err(AuthError::TokenFile("closed".into()));
        };
        let secret = secret.to_string();
        let hash = entry.hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(secret.as_bytes(), &h)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        if !ok {
            return fail("unknown token");
        }
        let p = match entry.company {
            Some(c) if !entry.operator => Principal::Company {
                token: entry.id.clone(),
                company: c,
            },
            _ => Principal::Operator {
                token: entry.id.clone(),
            },
        };
        let mut cache = lock(&self.cache);
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(digest, (p.clone(), now));
        Ok(p)
    }
}

/// An argon2id PHC string of `secret` (default parameters: 19 MiB, 2 passes).
pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    use std::io::Read;
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    Ok(b)
}

/// A new token for the token file: the token to hand out, and its `[[token]]` entry.
#[derive(Debug, Clone)]
pub struct TokenLine {
    pub token: String,
    pub entry: String,
}

/// Make a token: `id` names it (the audit log shows it); `company` None = operator.
pub fn new_token(id: &str, company: Option<&str>) -> Result<TokenLine, String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{id:?}: a token id is letters, digits, '-' and '_'"
        ));
    }
    let secret: String = random_bytes::<24>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hash = hash_secret(&secret)?;
    let who = match company {
        Some(c) => format!("company = {}", toml_edit::Value::from(c)),
        None => "operator = true".to_string(),
    };
    Ok(TokenLine {
        token: format!("{id}.{secret}"),
        entry: format!(
            "[[token]]\nid = {}\n{who}\nhash = {}\n",
            toml_edit::Value::from(id),
            toml_edit::Value::from(hash)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, lines: &[&TokenLine]) -> PathBuf {
        let p = dir.join("tokens.toml");
        let text: String = lines.iter().map(|l| format!("{}\n", l.entry)).collect();
        std::fs::write(&p, text).unwrap_or_default();
        p
    }

    #[tokio::test]
    async fn tokens_verify_scope_and_rate_limit() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let acme = new_token("acme-1", Some("acme"))?;
        let ops = new_token("ops", None)?;
        let t = Tokens::load(file(dir.path(), &[&acme, &ops]))?;
        let ip: IpAddr = [127, 0, 0, 1].into();
        let h = format!("Bearer {}", acme.token);
        assert_eq!(
            t.check(Some(&h), ip).await,
            Ok(Principal::Company {
                token: "acme-1".into(),
                company: "acme".into()
            })
        );
        // Cached: same answer.
        assert!(t.check(Some(&h), ip).await.is_ok());
        let h = format!("Bearer {}", ops.token);
        assert!(t.check(Some(&h), ip).await.is_ok_and(|p| p.is_operator()));
        // The file holds no secret.
        let text = std::fs::read_to_string(dir.path().join("tokens.toml")).unwrap_or_default();
        assert!(!text.contains(acme.token.split_once('.').map_or("", |x| x.1)));
        // A wrong secret, then the limit.
        let bad = format!("Bearer acme-1.{}", "0".repeat(48));
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                t.check(Some(&bad), ip).await,
                Err(AuthError::Unauthorized(_))
            ));
        }
        assert!(matches!(
            t.check(Some(&bad), ip).await,
            Err(AuthError::Limited(_))
        ));
        // Even a good token from that address waits; another address does not.
        let good = format!("Bearer {}", acme.token);
        assert!(matches!(
            t.check(Some(&good), ip).await,
            Err(AuthError::Limited(_))
        ));
        assert!(t.check(Some(&good), [127, 0, 0, 2].into()).await.is_ok());
        assert!(matches!(
            t.check(None, [127, 0, 0, 3].into()).await,
            Err(AuthError::Unauthorized(_))
        ));
        Ok(())
    }

    #[test]
    fn token_file_errors() {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let p = dir.path().join("t.toml");
        std::fs::write(
            &p,
            "[[token]]\nid = \"x\"\nhash = \"plain\"\ncompany = \"a\"\n",
        )
        .unwrap_or_default();
        assert!(Tokens::load(p.clone()).is_err_and(|e| e.contains("argon2")));
        std::fs::write(&p, "[[token]]\nid = \"x\"\nhash = \"h\"\n").unwrap_or_default();
        assert!(Tokens::load(p).is_err_and(|e| e.contains("either company")));
    }
}
