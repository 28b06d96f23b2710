//! The HTTP side: `/api/v1` handlers, error answers, the OpenAPI document, the console files.
//!
//! Every company route checks, in this order: the token (401, or 429 while the client's
//! address is over its failure limit), the company in the path against the token's company
//! (403 for another company's token, whatever the rest of the request: nothing of another
//! company is read, parsed or said to exist), then the request itself.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::OpenApi;

use crate::auth::{AuthError, Principal, Tokens};
use crate::edit::{self, Reach};
use crate::model::*;
use crate::records::{self, Filter};
use crate::store::{self, CompanyFile, Loaded, StoreError};
use crate::{ApiConfig, Error, Feed, Host};

pub struct State {
    cfg: ApiConfig,
    host: Arc<dyn Host>,
    feed: Feed,
    tokens: Tokens,
    audit: PathBuf,
    /// One change at a time: check, write, reload, audit.
    write: tokio::sync::Mutex<()>,
}

impl State {
    pub fn new(cfg: ApiConfig, host: Arc<dyn Host>, feed: Feed) -> Result<State, Error> {
        let base = if cfg.config_path.is_dir() {
            cfg.config_path.clone()
        } else {
            cfg.config_path
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default()
        };
        let tokens_path = if cfg.settings.tokens.is_relative() {
            base.join(&cfg.settings.tokens)
        } else {
            cfg.settings.tokens.clone()
        };
        let tokens = Tokens::load(tokens_path).map_err(Error::Config)?;
        let audit = cfg
            .settings
            .audit_log
            .clone()
            .unwrap_or_else(|| cfg.cdr_dir.join("api-audit.jsonl"));
        Ok(State {
            cfg,
            host,
            feed,
            tokens,
            audit,
            write: tokio::sync::Mutex::new(()),
        })
    }
}

type St = AxState<Arc<State>>;

/// An error answer (JSON [`ErrorBody`]).
#[derive(Debug)]
pub struct ApiErr {
    status: StatusCode,
    body: ErrorBody,
    retry_after: Option<u64>,
}

impl ApiErr {
    fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiErr {
        ApiErr {
            status,
            body: ErrorBody {
                error: error.into(),
                message: message.into(),
                errors: Vec::new(),
            },
            retry_after: None,
        }
    }

    fn with(mut self, errors: Vec<FieldError>) -> ApiErr {
        self.body.errors = errors;
        self
    }

    fn forbidden() -> ApiErr {
        ApiErr::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this token is not for that company",
        )
    }

    fn invalid(errors: Vec<FieldError>) -> ApiErr {
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the request is not valid; nothing was changed",
        )
        .with(errors)
    }

    fn internal(m: impl Into<String>) -> ApiErr {
        ApiErr::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
    }
}

impl IntoResponse for ApiErr {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<StoreError> for ApiErr {
    fn from(e: StoreError) -> ApiErr {
        match e {
            StoreError::Shared(others) => ApiErr::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "this company's file also holds {others}: it can be changed by the operator only"
                ),
            )
            .with(vec![FieldError::new("", "shared file").hint(
                "the operator moves each company into its own file (companies/<id>.toml, docs/API.md)",
            )]),
            StoreError::NoCompany => {
                ApiErr::new(StatusCode::NOT_FOUND, "not_found", "no such company")
            }
            StoreError::Invalid(errs) => ApiErr::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                "the change does not compile (the errors below, all of them); nothing was changed",
            )
            .with(errs),
            StoreError::Broken(m) => {
                tracing::error!(error = %m, "API: the config files cannot be read");
                ApiErr::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "config_unavailable",
                    "the platform config cannot be read now; the operator is told",
                )
            }
            StoreError::Io(m) => {
                tracing::error!(error = %m, "API: writing a company file failed");
                ApiErr::internal("the file could not be written; nothing was changed")
            }
        }
    }
}

async fn principal(st: &State, headers: &HeaderMap, addr: SocketAddr) -> Result<Principal, ApiErr> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    st.tokens.check(h, addr.ip()).await.map_err(|e| match e {
        AuthError::Unauthorized(m) => ApiErr::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
        AuthError::Limited(secs) => {
            let mut e = ApiErr::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!("too many failed token checks from this address; retry in {secs} s"),
            );
            e.retry_after = Some(secs);
            e
        }
        AuthError::TokenFile(m) => ApiErr::internal(m),
    })
}

/// Token + company scope: the first two checks of every company route.
async fn scoped(
    st: &State,
    headers: &HeaderMap,
    addr: SocketAddr,
    company: &str,
) -> Result<Principal, ApiErr> {
    let p = principal(st, headers, addr).await?;
    if !p.may(company) {
        return Err(ApiErr::forbidden());
    }
    Ok(p)
}

fn body<T: DeserializeOwned>(b: Result<Bytes, BytesRejection>, limit: usize) -> Result<T, ApiErr> {
    let b = b.map_err(|e| body_rejection(e, limit))?;
    let de = &mut serde_json::Deserializer::from_slice(&b);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let path = if path == "." { String::new() } else { path };
        ApiErr::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "the body is not valid JSON for this request; nothing was changed",
        )
        .with(vec![FieldError::new(path, inner.to_string())])
    })
}

/// The typed body and the body as sent (for the audit log).
fn body_raw<T: DeserializeOwned>(
    b: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<(T, serde_json::Value), ApiErr> {
    let b = b.map_err(|e| body_rejection(e, limit))?;
    let t = body(Ok(b.clone()), limit)?;
    let raw = serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null);
    Ok((t, raw))
}

fn body_rejection(e: BytesRejection, limit: usize) -> ApiErr {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiErr::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes ([server.api] max_body_bytes)"),
        )
    } else {
        ApiErr::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
    }
}

fn json_of(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn etag_response<T: serde::Serialize>(etag: &str, v: T) -> Response {
    let mut r = Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, h);
    }
    r
}

/// Names the API creates for a company start with `<company>-`: names are global across the
/// config files, and the prefix keeps one company's from ever meaning another's.
/// The operator may name things as ops do in the files.
fn check_new_name(
    p: &Principal,
    company: &str,
    what: &str,
    name: &str,
    errs: &mut Vec<FieldError>,
    path: &str,
) {
    if p.is_operator() {
        return;
    }
    let ok_chars = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok_chars || !name.starts_with(&format!("{company}-")) {
        errs.push(
            FieldError::new(path, format!("{name:?} is not a {what} name for {company}"))
                .hint(format!(
                    "lower-case letters, digits, '-' and '_', starting with \"{company}-\" (e.g. \"{company}-desk-2\")"
                )),
        );
    }
}

fn keys_of(doc: &toml_edit::DocumentMut, section: &str) -> BTreeSet<String> {
    doc.get(section)
        .and_then(|s| s.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default()
}

/// The company's numbers whose tables are in its file.
fn numbers_in_file(cf: &CompanyFile, company: &str) -> BTreeSet<String> {
    cf.doc
        .get("numbers")
        .and_then(|s| s.as_table_like())
        .map(|t| {
            t.iter()
                .filter(|(_, v)| v.get("company").and_then(|c| c.as_str()) == Some(company))
                .map(|(k, _)| k.to_string())
                .collect()
        })
        .unwrap_or_default()
}

struct Change<'a> {
    company: &'a str,
    principal: &'a Principal,
    action: String,
    if_match: Option<String>,
    body: serde_json::Value,
}

/// Check, write, reload, audit. `apply` edits the document or says what is wrong with the
/// request (its errors, all of them). Nothing is written unless the whole config compiles;
/// a reload that fails after the write puts the old text back.
async fn change(
    st: &State,
    c: Change<'_>,
    apply: impl FnOnce(&mut CompanyFile, &Loaded) -> Result<(), Vec<FieldError>>,
) -> Result<Response, ApiErr> {
    let _one = st.write.lock().await;
    let loaded = store::load(&st.cfg.config_path)?;
    let mut cf = loaded.company_file(c.company)?;
    if !cf.shared_with.is_empty() && !c.principal.is_operator() {
        return Err(StoreError::Shared(cf.shared_with.clone()).into());
    }
    if let Some(m) = &c.if_match {
        if m.trim() != "*" && m.trim() != cf.etag {
            return Err(ApiErr::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                format!(
                    "the company's file changed since you read it (If-Match {m}, now {}): read it again",
                    cf.etag
                ),
            ));
        }
    }
    let old_text = loaded.sources[cf.index].text.clone();
    apply(&mut cf, &loaded).map_err(ApiErr::invalid)?;
    let new_text = cf.doc.to_string();
    loaded.check(cf.index, &new_text)?;
    let new_etag = store::etag(&new_text);
    let reload = if new_text != old_text {
        store::write_atomic(&cf.path, &new_text)?;
        match st.host.reload().await {
            Ok(s) => s,
            Err(e) => {
                // Someone else's file changed meanwhile, or the server stops: put ours back.
                let back = store::write_atomic(&cf.path, &old_text);
                tracing::error!(error = %e, restored = back.is_ok(), file = %cf.path.display(), "API change not loaded");
                return Err(ApiErr::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the change could not be loaded; the file was put back as it was",
                ));
            }
        }
    } else {
        "unchanged".to_string()
    };
    let generation = st.host.generation();
    let file = cf.path.display().to_string();
    let entry = AuditEntry {
        at: jiff::Timestamp::now().to_string(),
        actor: c.principal.token().to_string(),
        role: c.principal.role().to_string(),
        company: c.company.to_string(),
        action: c.action,
        file: file.clone(),
        etag_before: cf.etag.clone(),
        etag_after: new_etag.clone(),
        generation,
        change: c.body,
    };
    let line = serde_json::to_value(&entry).unwrap_or_default();
    if let Err(e) = store::audit(&st.audit, &line) {
        tracing::error!(error = %e, "API audit log not written");
    }
    tracing::info!(actor = %entry.actor, company = %entry.company, action = %entry.action, generation, "API change");
    Ok(etag_response(
        &new_etag,
        Changed {
            etag: new_etag.clone(),
            generation,
            file,
            reload,
        },
    ))
}

fn if_match(h: &HeaderMap) -> Option<String> {
    h.get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn reach_of(
    st: &State,
    p: &Principal,
    t: &TargetBody,
    prefix: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Reach> {
    match (&t.phone, &t.uri) {
        (Some(phone), None) => {
            let digits: String = phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                errs.push(
                    FieldError::new(format!("{prefix}phone"), format!("{phone:?} is not a phone number"))
                        .hint("a domestic number: mobile 13800138000, or a fixed line with its area code 01088880000"),
                );
                return None;
            }
            let gateway = match (&t.gateway, p.is_operator()) {
                (Some(g), true) => Some(g.clone()),
                (Some(_), false) => {
                    errs.push(FieldError::new(
                        format!("{prefix}gateway"),
                        "only the operator chooses the gateway",
                    ));
                    return None;
                }
                (None, _) => st.cfg.settings.gateway.clone(),
            };
            let Some(gateway) = gateway else {
                errs.push(
                    FieldError::new(
                        format!("{prefix}phone"),
                        "phone numbers cannot be bound here: no gateway is configured",
                    )
                    .hint("the operator sets [server.api] gateway"),
                );
                return None;
            };
            Some(Reach::Phone {
                number: digits,
                gateway,
            })
        }
        (None, Some(uri)) => {
            if !p.is_operator() && !st.cfg.settings.allow_sip_uri {
                errs.push(
                    FieldError::new(
                        format!("{prefix}uri"),
                        "binding a SIP URI is not allowed for companies here",
                    )
                    .hint("bind a phone number instead (\"phone\")"),
                );
                return None;
            }
            if t.gateway.is_some() {
                errs.push(FieldError::new(
                    format!("{prefix}gateway"),
                    "a gateway goes with a phone number, not a URI",
                ));
                return None;
            }
            Some(Reach::Uri(uri.clone()))
        }
        (Some(_), Some(_)) => {
            errs.push(FieldError::new(
                format!("{prefix}uri"),
                "give phone or uri, not both",
            ));
            None
        }
        (None, None) => {
            errs.push(FieldError::new(
                format!("{prefix}phone"),
                "missing: give phone (or uri)",
            ));
            None
        }
    }
}

fn check_max(t: &TargetBody, prefix: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = t.max_concurrent {
        if !(1..=10_000).contains(&m) {
            errs.push(FieldError::new(
                format!("{prefix}max_concurrent"),
                format!("{m} is not a number of calls (1 to 10000)"),
            ));
        }
    }
}

// ---- handlers ----

#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
async fn whoami(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
) -> Result<Json<WhoAmI>, ApiErr> {
    let p = principal(&st, &h, addr).await?;
    Ok(Json(WhoAmI {
        token: p.token().to_string(),
        role: p.role().to_string(),
        company: p.company().map(String::from),
    }))
}

#[utoipa::path(get, path = "/api/v1/companies", responses((status = 200, body = [CompanySummary])), security(("bearer" = [])))]
async fn companies(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
) -> Result<Json<Vec<CompanySummary>>, ApiErr> {
    let p = principal(&st, &h, addr).await?;
    let loaded = store::load(&st.cfg.config_path)?;
    let tables = loaded.tables();
    let mut out = Vec::new();
    for (id, i) in loaded.companies() {
        if !p.may(&id) {
            continue;
        }
        let name = tables.iter().find_map(|(_, t)| {
            t.get("companies")?
                .get(&id)?
                .get("name")?
                .as_str()
                .map(String::from)
        });
        let numbers = tables
            .iter()
            .flat_map(|(_, t)| {
                t.get("numbers")
                    .and_then(|n| n.as_table())
                    .into_iter()
                    .flatten()
            })
            .filter(|(_, v)| v.get("company").and_then(|c| c.as_str()) == Some(&id))
            .map(|(k, _)| k.clone())
            .collect();
        out.push(CompanySummary {
            id,
            name,
            file: loaded.sources[i].name.clone(),
            numbers,
        });
    }
    Ok(Json(out))
}

#[utoipa::path(get, path = "/api/v1/companies/{company}", params(("company" = String, Path)), responses((status = 200, body = CompanyView), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn company(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
) -> Result<Response, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let loaded = store::load(&st.cfg.config_path)?;
    let cf = loaded.company_file(&company)?;
    let tables = loaded.tables();
    let mine = &loaded.sources[cf.index].name;
    let own = tables
        .iter()
        .find(|(f, _)| f == mine)
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    let section = |k: &str| own.get(k).map(json_of).unwrap_or(serde_json::json!({}));
    let mut numbers = serde_json::Map::new();
    let mut read_only = Vec::new();
    for (f, t) in &tables {
        for (n, v) in t
            .get("numbers")
            .and_then(|n| n.as_table())
            .into_iter()
            .flatten()
        {
            if v.get("company").and_then(|c| c.as_str()) == Some(&company) {
                numbers.insert(n.clone(), json_of(v));
                if f != mine {
                    read_only.push(n.clone());
                }
            }
        }
    }
    let name = own
        .get("companies")
        .and_then(|c| c.get(&company))
        .and_then(|c| c.get("name"))
        .and_then(|n| n.as_str())
        .map(String::from);
    let view = CompanyView {
        id: company.clone(),
        name,
        file: mine.clone(),
        etag: cf.etag.clone(),
        generation: st.host.generation(),
        numbers: serde_json::Value::Object(numbers),
        targets: section("targets"),
        plans: section("plans"),
        lists: section("lists"),
        read_only_numbers: read_only,
    };
    Ok(etag_response(&cf.etag, view))
}

#[utoipa::path(put, path = "/api/v1/companies/{company}/targets/{name}", params(("company" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header)), request_body = TargetBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_target(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, name)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (t, raw): (TargetBody, serde_json::Value) = body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("put target {name}"),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        let mut errs = Vec::new();
        if !keys_of(&cf.doc, "targets").contains(&name) {
            check_new_name(&p, &company, "target", &name, &mut errs, "name");
        }
        check_max(&t, "", &mut errs);
        let reach = reach_of(&st, &p, &t, "", &mut errs);
        match (errs.is_empty(), reach) {
            (true, Some(r)) => {
                edit::set_target(&mut cf.doc, &name, &r, t.max_concurrent);
                Ok(())
            }
            _ => Err(errs),
        }
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/companies/{company}/targets/{name}", params(("company" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header)), responses((status = 200, body = Changed), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_target(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, name)): Path<(String, String)>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("unbind target {name}"),
        if_match: if_match(&h),
        body: serde_json::Value::Null,
    };
    change(&st, c, |cf, _| {
        if edit::remove_target(&mut cf.doc, &name) {
            Ok(())
        } else {
            Err(vec![FieldError::new(
                "name",
                format!("the company has no target {name:?}"),
            )])
        }
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/companies/{company}/bind", params(("company" = String, Path), ("If-Match" = Option<String>, Header)), request_body = BindBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn bind(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (req, raw): (BindBody, serde_json::Value) = body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("bind {} into plan {}", req.name, req.plan),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        let mut errs = Vec::new();
        if !keys_of(&cf.doc, "targets").contains(&req.name) {
            check_new_name(&p, &company, "target", &req.name, &mut errs, "name");
        }
        if !keys_of(&cf.doc, "plans").contains(&req.plan) {
            errs.push(
                FieldError::new("plan", format!("the company has no plan {:?}", req.plan)).hint(
                    format!(
                        "one of: {}",
                        keys_of(&cf.doc, "plans")
                            .into_iter()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
            );
        }
        check_max(&req.target, "", &mut errs);
        let reach = reach_of(&st, &p, &req.target, "", &mut errs);
        let Some(r) = reach.filter(|_| errs.is_empty()) else {
            return Err(errs);
        };
        edit::set_target(&mut cf.doc, &req.name, &r, req.target.max_concurrent);
        edit::bind(
            &mut cf.doc,
            &req.plan,
            req.group.unwrap_or(0),
            &req.name,
            req.ring_timeout.as_deref(),
        )
        .map_err(|m| vec![FieldError::new("group", m)])
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/companies/{company}/plans/{plan}/groups", params(("company" = String, Path), ("plan" = String, Path), ("If-Match" = Option<String>, Header)), request_body = GroupsBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_groups(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, plan)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (req, raw): (GroupsBody, serde_json::Value) = body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("set groups of plan {plan}"),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        let mut errs = Vec::new();
        if !keys_of(&cf.doc, "plans").contains(&plan) {
            check_new_name(&p, &company, "plan", &plan, &mut errs, "plan");
        }
        let targets = keys_of(&cf.doc, "targets");
        // The operator may refer to shared targets (the compiler checks they exist).
        let groups: &[GroupBody] = if p.is_operator() { &[] } else { &req.groups };
        for (gi, g) in groups.iter().enumerate() {
            for (mi, m) in g.members.iter().enumerate() {
                if !targets.contains(&m.target) {
                    errs.push(
                        FieldError::new(
                            format!("groups[{gi}].members[{mi}].target"),
                            format!("the company has no target {:?}", m.target),
                        )
                        .hint("bind the phone first (PUT .../targets/NAME)"),
                    );
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        edit::set_groups(&mut cf.doc, &plan, &req.groups);
        Ok(())
    })
    .await
}

fn own_number(cf: &CompanyFile, company: &str, number: &str) -> Result<(), Vec<FieldError>> {
    if numbers_in_file(cf, company).contains(number) {
        Ok(())
    } else {
        Err(vec![FieldError::new(
            "number",
            format!("{number} is not a number of {company} in its file"),
        )
        .hint("numbers in another file are the operator's to change")])
    }
}

#[utoipa::path(put, path = "/api/v1/companies/{company}/numbers/{number}/routing", params(("company" = String, Path), ("number" = String, Path), ("If-Match" = Option<String>, Header)), request_body = RoutingBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_routing(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, number)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (req, raw): (RoutingBody, serde_json::Value) = body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("set routing of {number}"),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        own_number(cf, &company, &number)?;
        if p.is_operator() {
            // The operator may route to shared plans and lists; the compiler checks them.
            return edit::set_routing(&mut cf.doc, &number, &req.plan, &req.rules)
                .map_err(|m| vec![FieldError::new("number", m)]);
        }
        let plans = keys_of(&cf.doc, "plans");
        let lists = keys_of(&cf.doc, "lists");
        let mut errs = Vec::new();
        if !plans.contains(&req.plan) {
            errs.push(FieldError::new(
                "plan",
                format!("the company has no plan {:?}", req.plan),
            ));
        }
        for (i, r) in req.rules.iter().enumerate() {
            if !plans.contains(&r.plan) {
                errs.push(FieldError::new(
                    format!("rules[{i}].plan"),
                    format!("the company has no plan {:?}", r.plan),
                ));
            }
            for (j, l) in r.list.iter().flatten().enumerate() {
                if !lists.contains(l) {
                    errs.push(FieldError::new(
                        format!("rules[{i}].list[{j}]"),
                        format!("the company has no list {l:?}"),
                    ));
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        edit::set_routing(&mut cf.doc, &number, &req.plan, &req.rules)
            .map_err(|m| vec![FieldError::new("number", m)])
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/companies/{company}/numbers/{number}/screening", params(("company" = String, Path), ("number" = String, Path), ("If-Match" = Option<String>, Header)), request_body = ScreeningBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_screening(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, number)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (req, raw): (ScreeningBody, serde_json::Value) =
        body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("set screening of {number}"),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        own_number(cf, &company, &number)?;
        edit::set_screening(&mut cf.doc, &number, &req)
            .map_err(|m| vec![FieldError::new("number", m)])
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/companies/{company}/lists/{name}", params(("company" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header)), request_body = ListBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_list(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, name)): Path<(String, String)>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let (req, raw): (ListBody, serde_json::Value) = body_raw(b, st.cfg.settings.max_body_bytes)?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("set list {name}"),
        if_match: if_match(&h),
        body: raw,
    };
    change(&st, c, |cf, _| {
        let mut errs = Vec::new();
        if !keys_of(&cf.doc, "lists").contains(&name) {
            check_new_name(&p, &company, "list", &name, &mut errs, "name");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        edit::set_list(&mut cf.doc, &name, &req);
        Ok(())
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/companies/{company}/lists/{name}", params(("company" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header)), responses((status = 200, body = Changed), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_list(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path((company, name)): Path<(String, String)>,
) -> Result<Response, ApiErr> {
    let p = scoped(&st, &h, addr, &company).await?;
    let c = Change {
        company: &company,
        principal: &p,
        action: format!("delete list {name}"),
        if_match: if_match(&h),
        body: serde_json::Value::Null,
    };
    change(&st, c, |cf, _| {
        if edit::remove_list(&mut cf.doc, &name) {
            Ok(())
        } else {
            Err(vec![FieldError::new(
                "name",
                format!("the company has no list {name:?}"),
            )])
        }
    })
    .await
}

/// `--at` forms of `hotline explain`: RFC 3339, a civil time in China, or a date.
fn parse_at(s: &str) -> Option<jiff::Timestamp> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    let tz = hotline_cdr::report::china_tz();
    if !s.contains(['T', 't', ' ']) {
        return s
            .parse::<jiff::civil::Date>()
            .ok()?
            .to_zoned(tz)
            .ok()
            .map(|z| z.timestamp());
    }
    s.parse::<jiff::civil::DateTime>()
        .ok()?
        .to_zoned(tz)
        .ok()
        .map(|z| z.timestamp())
}

#[utoipa::path(post, path = "/api/v1/companies/{company}/explain", params(("company" = String, Path)), request_body = ExplainBody, responses((status = 200, description = "what `hotline explain --json` prints", body = Object), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn explain(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let req: ExplainBody = body(b, st.cfg.settings.max_body_bytes)?;
    let mut errs = Vec::new();
    let called = match hotline_route::normalize_called(&req.number) {
        Ok(n) => Some(n),
        Err(e) => {
            errs.push(FieldError::new(
                "number",
                format!("{:?} is not a 400 or 1010 number: {e}", req.number),
            ));
            None
        }
    };
    let at =
        match &req.at {
            Some(a) => parse_at(a).or_else(|| {
                errs.push(FieldError::new("at", format!("{a:?} is not a time")).hint(
                    "e.g. 2026-10-01T09:30+08:00, 2026-10-01T09:30 (China time) or 2026-10-01",
                ));
                None
            }),
            None => Some(jiff::Timestamp::now()),
        };
    if req.from.trim().is_empty() {
        errs.push(FieldError::new("from", "the caller's number is missing"));
    }
    let (Some(called), Some(at)) = (called, at) else {
        return Err(ApiErr::invalid(errs));
    };
    if !errs.is_empty() {
        return Err(ApiErr::invalid(errs));
    }
    if st.host.company_of(&called.to_string()).as_deref() != Some(company.as_str()) {
        return Err(ApiErr::forbidden().with(vec![FieldError::new(
            "number",
            "not a number of this company",
        )]));
    }
    let ex = st.host.explain(called, &req.from, req.key, at);
    Ok(Json(ex).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    /// One of the company's numbers.
    number: Option<String>,
    /// RFC 3339 or a China civil time / date.
    since: Option<String>,
    until: Option<String>,
    /// Most recent N (default 100, at most 10000).
    limit: Option<usize>,
}

fn filter_of(company: &str, q: &CallsQuery) -> Result<Filter, ApiErr> {
    let mut errs = Vec::new();
    let mut time = |k: &str, v: &Option<String>| {
        v.as_ref().and_then(|s| {
            parse_at(s).or_else(|| {
                errs.push(FieldError::new(k, format!("{s:?} is not a time")));
                None
            })
        })
    };
    let since = time("since", &q.since);
    let until = time("until", &q.until);
    if !errs.is_empty() {
        return Err(ApiErr::invalid(errs));
    }
    Ok(Filter {
        company: company.to_string(),
        number: q.number.clone(),
        since,
        until,
    })
}

fn query_err(e: QueryRejection) -> ApiErr {
    ApiErr::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        e.body_text(),
    )
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/calls", params(("company" = String, Path), CallsQuery), responses((status = 200, body = CallList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn calls(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
    q: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Json<CallList>, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let Query(q) = q.map_err(query_err)?;
    let f = filter_of(&company, &q)?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let dir = st.cfg.cdr_dir.clone();
    tokio::task::spawn_blocking(move || records::calls(&dir, &f, limit))
        .await
        .map_err(|e| ApiErr::internal(e.to_string()))?
        .map(Json)
        .map_err(ApiErr::internal)
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/stats", params(("company" = String, Path), CallsQuery), responses((status = 200, body = Stats), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
async fn stats(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
    q: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Json<Stats>, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let Query(q) = q.map_err(query_err)?;
    let f = filter_of(&company, &q)?;
    let dir = st.cfg.cdr_dir.clone();
    tokio::task::spawn_blocking(move || records::stats(&dir, &f))
        .await
        .map_err(|e| ApiErr::internal(e.to_string()))?
        .map(Json)
        .map_err(ApiErr::internal)
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/events", params(("company" = String, Path)), responses((status = 200, description = "text/event-stream: `call` events (JSON: kind ringing / answered / ended, number, caller, target ...)")), security(("bearer" = [])))]
async fn events(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
) -> Result<Response, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let rx = st.feed.subscribe();
    let host = st.host.clone();
    let stream =
        futures_util::stream::unfold((rx, host, company), |(mut rx, host, company)| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        if host.company_of(&ev.number).as_deref() == Some(company.as_str()) {
                            let data = serde_json::to_string(&*ev).unwrap_or_default();
                            let e = Event::default().event("call").data(data);
                            return Some((Ok::<Event, Infallible>(e), (rx, host, company)));
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let e = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(e), (rx, host, company)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Most recent N (default 100).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/audit", params(("company" = String, Path), AuditQuery), responses((status = 200, body = [AuditEntry])), security(("bearer" = [])))]
async fn audit(
    AxState(st): St,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    h: HeaderMap,
    Path(company): Path<String>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ApiErr> {
    scoped(&st, &h, addr, &company).await?;
    let Query(q) = q.map_err(query_err)?;
    Ok(Json(store::read_audit(
        &st.audit,
        Some(&company),
        q.limit.unwrap_or(100),
    )))
}

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hotline company API", description = "Self-service for 400-number companies: phones, hunt order, time rules, lists, call records, live calls. See docs/API.md."),
    paths(whoami, companies, company, put_target, delete_target, bind, put_groups, put_routing, put_screening, put_list, delete_list, explain, calls, stats, events, audit),
    modifiers(&Security)
)]
struct Doc;

pub fn openapi_json() -> String {
    Doc::openapi().to_pretty_json().unwrap_or_default()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// The console's files. The page may load only its own script and style sheet (the token is
/// in the page: no third-party script, no framing); inline `style` attributes (chart bars)
/// are the one allowance.
fn asset(ct: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

async fn fallback() -> ApiErr {
    ApiErr::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see /api/v1/openapi.json)",
    )
}

pub fn router(st: Arc<State>) -> Router {
    let limit = st.cfg.settings.max_body_bytes;
    let mut r = Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/companies", get(companies))
        .route("/api/v1/companies/{company}", get(company))
        .route(
            "/api/v1/companies/{company}/targets/{name}",
            put(put_target).delete(delete_target),
        )
        .route("/api/v1/companies/{company}/bind", post(bind))
        .route(
            "/api/v1/companies/{company}/plans/{plan}/groups",
            put(put_groups),
        )
        .route(
            "/api/v1/companies/{company}/numbers/{number}/routing",
            put(put_routing),
        )
        .route(
            "/api/v1/companies/{company}/numbers/{number}/screening",
            put(put_screening),
        )
        .route(
            "/api/v1/companies/{company}/lists/{name}",
            put(put_list).delete(delete_list),
        )
        .route("/api/v1/companies/{company}/explain", post(explain))
        .route("/api/v1/companies/{company}/calls", get(calls))
        .route("/api/v1/companies/{company}/stats", get(stats))
        .route("/api/v1/companies/{company}/events", get(events))
        .route("/api/v1/companies/{company}/audit", get(audit));
    if st.cfg.settings.console {
        r = r
            .route(
                "/",
                get(|| async { asset("text/html; charset=utf-8", INDEX) }),
            )
            .route(
                "/console/app.js",
                get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
            )
            .route(
                "/console/style.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            );
    }
    r.fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(st)
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the document the code generates (`UPDATE_OPENAPI=1` rewrites it).
    #[test]
    fn docs_openapi_json_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let now = format!("{}\n", super::openapi_json());
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            let _ = std::fs::write(path, &now);
        }
        let saved = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            saved == now,
            "docs/openapi.json is stale: UPDATE_OPENAPI=1 cargo test -p hotline-api docs_openapi"
        );
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = super::openapi_json();
        for p in [
            "/api/v1/companies/{company}/bind",
            "/api/v1/companies/{company}/plans/{plan}/groups",
            "/api/v1/companies/{company}/numbers/{number}/routing",
            "/api/v1/companies/{company}/events",
            "\"bearer\"",
            "BindBody",
        ] {
            assert!(doc.contains(p), "{p} missing from the OpenAPI document");
        }
    }
}
