//! The company's edits: targets, binding, hunt order, routing, screening, lists; each one
//! checked, compiled with every file, written atomically and reloaded (`change`).

use super::*;

/// Names the API creates for a company start with `<company>-`: names are global across the
/// config files, and the prefix keeps one company's from ever meaning another's.
/// The operator may name things as ops do in the files.
pub(super) fn check_new_name(
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

pub(super) fn keys_of(doc: &toml_edit::DocumentMut, section: &str) -> BTreeSet<String> {
    doc.get(section)
        .and_then(|s| s.as_table_like())
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default()
}

/// The company's numbers whose tables are in its file.
pub(super) fn numbers_in_file(cf: &CompanyFile, company: &str) -> BTreeSet<String> {
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

pub(super) struct Change<'a> {
    company: &'a str,
    principal: &'a Principal,
    action: String,
    if_match: Option<String>,
    body: serde_json::Value,
}

/// Check, write, reload, audit. `apply` edits the document or says what is wrong with the
/// request (its errors, all of them). Nothing is written unless the whole config compiles;
/// a reload that fails after the write puts the old text back.
pub(super) async fn change(
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

pub(super) fn if_match(h: &HeaderMap) -> Option<String> {
    h.get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

pub(super) fn reach_of(
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

pub(super) fn check_max(t: &TargetBody, prefix: &str, errs: &mut Vec<FieldError>) {
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

#[utoipa::path(put, path = "/api/v1/companies/{company}/targets/{name}", params(("company" = String, Path), ("name" = String, Path), ("If-Match" = Option<String>, Header)), request_body = TargetBody, responses((status = 200, body = Changed), (status = 412, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub(super) async fn put_target(
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
pub(super) async fn delete_target(
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
pub(super) async fn bind(
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
pub(super) async fn put_groups(
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

pub(super) fn own_number(
    cf: &CompanyFile,
    company: &str,
    number: &str,
) -> Result<(), Vec<FieldError>> {
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
pub(super) async fn put_routing(
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
pub(super) async fn put_screening(
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
pub(super) async fn put_list(
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
pub(super) async fn delete_list(
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
