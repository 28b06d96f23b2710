//! `[gateways]` and `[targets]`: where a branch goes (SIP URI or number through a gateway),
//! its limits and its forwards by cause.

use super::*;

/// `[gateways]`: name -> (address, transport).
pub(crate) fn compile_gateways(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    seen_at: &mut HashMap<String, usize>,
) -> HashMap<String, (SocketAddr, Transport)> {
    let mut gateways: HashMap<String, (SocketAddr, Transport)> = HashMap::new();
    for (fi, f) in files {
        for (name, gw) in &f.gateways {
            let key = format!("gateways.{}", q(name.get_ref()));
            if dup(cx, seen_at, *fi, name, &key) {
                continue;
            }
            let g = gw;
            match g.address.get_ref().parse::<SocketAddr>() {
                Ok(a) => {
                    let t = g.transport.unwrap_or(Transport::Udp);
                    gateways.insert(name.get_ref().clone(), (a, t));
                }
                Err(_) => cx.err(
                    *fi,
                    g.address.span(),
                    format!("{key}.address"),
                    format!("{:?} is not an IP:port address", g.address.get_ref()),
                    Some("Hotline does no DNS: write e.g. \"10.0.0.9:5060\"".into()),
                ),
            }
        }
    }

    gateways
}

/// The targets of every file, by id; their forwards by cause are resolved once all are known.
pub(crate) struct Targets {
    pub list: Vec<Target>,
    pub ids: HashMap<String, TargetId>,
    /// Where each was defined (file, span of its name), for the unused warning.
    pub loc: Vec<(usize, Range<usize>)>,
    /// Every name defined, also those that failed to build (no cascades of "unknown target").
    pub defined: HashSet<String>,
    /// Targets something refers to (a forward, then the plans).
    pub used: HashSet<TargetId>,
}

/// `[targets]`.
pub(crate) fn compile_targets(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    seen_at: &mut HashMap<String, usize>,
    gateways: &HashMap<String, (SocketAddr, Transport)>,
) -> Targets {
    let mut targets: Vec<Target> = Vec::new();
    let mut target_ids: HashMap<String, TargetId> = HashMap::new();
    let mut target_loc: Vec<(usize, Range<usize>)> = Vec::new();
    for (fi, f) in files {
        for (name, t) in &f.targets {
            let key = format!("targets.{}", q(name.get_ref()));
            if dup(cx, seen_at, *fi, name, &key) {
                continue;
            }
            if let Some(target) = build_target(cx, *fi, &key, name, t, gateways, targets.len()) {
                target_ids.insert(target.name.clone(), target.id);
                target_loc.push((*fi, name.span()));
                targets.push(target);
            }
        }
    }
    // Names that failed to build still count as defined (avoid cascades of "unknown target").
    let mut defined_targets: HashSet<String> = HashSet::new();
    for (_, f) in files {
        for name in f.targets.keys() {
            defined_targets.insert(name.get_ref().clone());
        }
    }
    // Forwards by cause between targets (names resolved once every target is known).
    let mut forward_used: HashSet<TargetId> = HashSet::new();
    for (fi, f) in files {
        for (name, t) in &f.targets {
            let (Some(raw), Some(&id)) = (&t.forward_on, target_ids.get(name.get_ref())) else {
                continue;
            };
            let key = format!("targets.{}.forward_on", q(name.get_ref()));
            let fwd = build_forward_on(
                cx,
                *fi,
                &key,
                raw,
                &target_ids,
                &defined_targets,
                Some(name.get_ref()),
                &mut forward_used,
            );
            if let Some(t) = targets.get_mut(id.0 as usize) {
                t.forward_on = fwd;
            }
        }
    }

    Targets {
        list: targets,
        ids: target_ids,
        loc: target_loc,
        defined: defined_targets,
        used: forward_used,
    }
}

/// `forward_on = { busy = "a", ... }` of target `own` (or of a plan: `None`): each name must be
/// a target, not `own` itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_forward_on(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    raw: &RawForwardOn,
    target_ids: &HashMap<String, TargetId>,
    defined: &HashSet<String>,
    own: Option<&str>,
    used: &mut HashSet<TargetId>,
) -> ForwardOn {
    let mut one = |cause: &str, v: &Option<Spanned<String>>| -> Option<TargetId> {
        let v = v.as_ref()?;
        let name = v.get_ref();
        if own == Some(name.as_str()) {
            cx.err(
                fi,
                v.span(),
                format!("{key}.{cause}"),
                format!("target {name:?} forwards to itself"),
                Some("name another target (e.g. a colleague, a mobile, voicemail)".into()),
            );
            return None;
        }
        match target_ids.get(name) {
            Some(&id) => {
                used.insert(id);
                Some(id)
            }
            None if defined.contains(name) => None,
            None => {
                cx.err(
                    fi,
                    v.span(),
                    format!("{key}.{cause}"),
                    format!("unknown target {name:?}"),
                    names_hint("targets", target_ids.keys()),
                );
                None
            }
        }
    };
    ForwardOn {
        busy: one("busy", &raw.busy),
        no_answer: one("no_answer", &raw.no_answer),
        unreachable: one("unreachable", &raw.unreachable),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn build_target(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: &str,
    name: &Spanned<String>,
    t: &RawTarget,
    gateways: &HashMap<String, (SocketAddr, Transport)>,
    index: usize,
) -> Option<Target> {
    let raw = t;
    let max_concurrent = match &raw.max_concurrent {
        None => None,
        Some(m) => match u32::try_from(*m.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                cx.err(
                    fi,
                    m.span(),
                    format!("{key}.max_concurrent"),
                    "must be a positive integer",
                    Some("omit it for no limit".into()),
                );
                None
            }
        },
    };
    match (&raw.uri, &raw.number, &raw.gateway) {
        (Some(uri), None, None) => match parse_sip_uri(uri.get_ref()) {
            Ok(_) if !uri_user_allowed(sip_uri_user(uri.get_ref())) => {
                cx.err(
                    fi,
                    uri.span(),
                    format!("{key}.uri"),
                    format!(
                        "{:?} calls an international or premium-rate number",
                        uri.get_ref()
                    ),
                    Some(
                        "400 service is domestic: targets must be mainland numbers (no 声讯 168 numbers)"
                            .into(),
                    ),
                );
                None
            }
            Ok((next_hop, transport)) => Some(Target {
                id: TargetId(index as u32),
                name: name.get_ref().clone(),
                uri: uri.get_ref().clone(),
                next_hop,
                transport,
                max_concurrent,
                forward_on: ForwardOn::default(),
                caller_id: raw.caller_id.map(CallerIdRaw::compile),
            }),
            Err((m, hint)) => {
                cx.err(fi, uri.span(), format!("{key}.uri"), m, hint);
                None
            }
        },
        (None, Some(num), Some(gw)) => {
            let c = normalize_caller(num.get_ref());
            let ok = match c.kind {
                CallerKind::Mobile | CallerKind::FixedLine if c.is_allowed_target() => true,
                CallerKind::Mobile | CallerKind::FixedLine => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!("{:?} is a premium-rate (声讯) number", num.get_ref()),
                        Some("400 service does not forward to premium-rate services".into()),
                    );
                    false
                }
                CallerKind::International => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!("{:?} is an international number", num.get_ref()),
                        Some("400 service is domestic: targets must be mainland numbers".into()),
                    );
                    false
                }
                CallerKind::Unknown => {
                    cx.err(
                        fi,
                        num.span(),
                        format!("{key}.number"),
                        format!(
                            "{:?} is not a domestic mobile or fixed-line number",
                            num.get_ref()
                        ),
                        Some(
                            "write a mobile (13800138000) or area code + number (01012345678)"
                                .into(),
                        ),
                    );
                    false
                }
            };
            let g = match gateways.get(gw.get_ref()) {
                Some(g) => Some(*g),
                None => {
                    cx.err(
                        fi,
                        gw.span(),
                        format!("{key}.gateway"),
                        format!("unknown gateway {:?}", gw.get_ref()),
                        names_hint("gateways", gateways.keys()),
                    );
                    None
                }
            };
            let (addr, transport) = g?;
            if !ok {
                return None;
            }
            let host = match addr {
                SocketAddr::V4(a) => a.to_string(),
                SocketAddr::V6(a) => a.to_string(),
            };
            let uri = match transport {
                Transport::Udp => format!("sip:{}@{host}", c.normalized()),
                Transport::Tcp => format!("sip:{}@{host};transport=tcp", c.normalized()),
            };
            Some(Target {
                id: TargetId(index as u32),
                name: name.get_ref().clone(),
                uri,
                next_hop: addr,
                transport,
                max_concurrent,
                forward_on: ForwardOn::default(),
                caller_id: raw.caller_id.map(CallerIdRaw::compile),
            })
        }
        (None, Some(num), None) => {
            cx.err(
                fi,
                num.span(),
                key.to_string(),
                "a number target needs a gateway",
                Some("add gateway = \"<name of a [gateways.NAME] entry>\"".into()),
            );
            None
        }
        _ => {
            cx.err(
                fi,
                name.span(),
                key.to_string(),
                "a target is either uri = \"sip:...\" or number = \"...\" with gateway = \"...\"",
                None,
            );
            None
        }
    }
}

/// The user part of a `sip:`/`sips:`/`tel:` URI string (empty when there is none).
pub(crate) fn sip_uri_user(uri: &str) -> &str {
    hotline_sip::uri::Uri::parse(uri.as_bytes())
        .and_then(|u| std::str::from_utf8(u.user).ok())
        .unwrap_or("")
}
