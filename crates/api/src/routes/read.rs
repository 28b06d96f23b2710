//! What a company reads: who it is, its numbers and entries, explain, call records,
//! statistics, the live feed, the audit log.

use super::*;

#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn whoami(
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
pub(super) async fn companies(
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
pub(super) async fn company(
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

/// `--at` forms of `hotline explain`: RFC 3339, a civil time in China, or a date.
pub(super) fn parse_at(s: &str) -> Option<jiff::Timestamp> {
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
pub(super) async fn explain(
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
pub(super) struct CallsQuery {
    /// One of the company's numbers.
    number: Option<String>,
    /// RFC 3339 or a China civil time / date.
    since: Option<String>,
    until: Option<String>,
    /// Most recent N (default 100, at most 10000).
    limit: Option<usize>,
}

pub(super) fn filter_of(company: &str, q: &CallsQuery) -> Result<Filter, ApiErr> {
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

pub(super) fn query_err(e: QueryRejection) -> ApiErr {
    ApiErr::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_query",
        e.body_text(),
    )
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/calls", params(("company" = String, Path), CallsQuery), responses((status = 200, body = CallList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn calls(
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
pub(super) async fn stats(
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
pub(super) async fn events(
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
pub(super) struct AuditQuery {
    /// Most recent N (default 100).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/companies/{company}/audit", params(("company" = String, Path), AuditQuery), responses((status = 200, body = [AuditEntry])), security(("bearer" = [])))]
pub(super) async fn audit(
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
