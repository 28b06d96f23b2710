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

mod read;
mod write;

use read::*;
use write::*;

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

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/style.css");

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
