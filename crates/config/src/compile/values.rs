//! Scalar values of the config: durations, time and date ranges, weekdays, regions, SIP codes,
//! target URIs (checked with the SIP core's parser), CIDRs.

use super::*;

/// Parse a duration: `"500ms"`, `"20s"`, `"2m"`, `"1h"`, `"1h30m"`, or integer seconds.
pub fn parse_duration(raw: &DurationRaw) -> Result<Duration, String> {
    match raw {
        DurationRaw::Seconds(s) => u64::try_from(*s)
            .map(Duration::from_secs)
            .map_err(|_| format!("negative duration {s}")),
        DurationRaw::Text(t) => parse_duration_str(t),
    }
}

pub(crate) fn parse_duration_str(t: &str) -> Result<Duration, String> {
    let s = t.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("bad duration {t:?}"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("bad duration {t:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            _ => return Err(format!("bad duration {t:?}: unit must be ms, s, m, h or d")),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

/// Parse `HH:MM-HH:MM` (end exclusive; `24:00` allowed as an end; end before start = overnight).
pub fn parse_time_range(s: &str) -> Result<TimeRange, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("bad time range {s:?}: expected HH:MM-HH:MM"))?;
    let hm = |x: &str, end: bool| -> Result<u16, String> {
        let (h, m) = x
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("bad time {x:?}: expected HH:MM"))?;
        let h: u16 = h.parse().map_err(|_| format!("bad hour in {x:?}"))?;
        let m: u16 = m.parse().map_err(|_| format!("bad minute in {x:?}"))?;
        if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
            return Err(format!("time {x:?} out of range"));
        }
        Ok(h * 60 + m)
    };
    let start = hm(a, false)?;
    let end = hm(b, true)?;
    if start == end {
        return Err(format!(
            "time range {s:?} is empty (start equals end); use 00:00-24:00 for all day"
        ));
    }
    Ok(TimeRange { start, end })
}

pub(crate) fn parse_weekday(s: &str) -> Option<u8> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => 0,
        "tue" | "tuesday" => 1,
        "wed" | "wednesday" => 2,
        "thu" | "thursday" => 3,
        "fri" | "friday" => 4,
        "sat" | "saturday" => 5,
        "sun" | "sunday" => 6,
        _ => return None,
    })
}

/// Parse weekday names and ranges (`mon`, `mon-fri`, `fri-mon` wraps) into a bitmask.
pub fn parse_weekdays(items: &[String]) -> Result<Weekdays, String> {
    let mut mask = 0u8;
    for it in items {
        match it.split_once('-') {
            Some((a, b)) => {
                let (Some(a), Some(b)) = (parse_weekday(a), parse_weekday(b)) else {
                    return Err(format!("bad weekday range {it:?}: use e.g. mon-fri"));
                };
                let mut d = a;
                loop {
                    mask |= 1 << d;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => {
                let d = parse_weekday(it)
                    .ok_or_else(|| format!("bad weekday {it:?}: use mon, tue, ... sun"))?;
                mask |= 1 << d;
            }
        }
    }
    Ok(Weekdays(mask))
}

pub(crate) fn parse_date(s: &str) -> Result<Date, String> {
    s.trim()
        .parse::<Date>()
        .map_err(|_| format!("bad date {s:?}: expected YYYY-MM-DD"))
}

/// Parse `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` (inclusive).
pub fn parse_date_range(s: &str) -> Result<(Date, Date), String> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_date(a)?, parse_date(b)?);
            if b < a {
                return Err(format!("date range {s:?} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let d = parse_date(s)?;
            Ok((d, d))
        }
    }
}

pub(crate) fn parse_region(s: &str, db: &RegionDb) -> Result<RegionPattern, String> {
    let s = s.trim();
    let split = s.split_once('/').or_else(|| s.split_once(' '));
    match split {
        Some((p, c)) => {
            let (p, c) = (p.trim(), c.trim());
            if !db.knows_pair(p, c) {
                return Err(format!("unknown region {s:?}"));
            }
            Ok(RegionPattern {
                name: p.into(),
                city: Some(c.into()),
            })
        }
        None => {
            if !db.knows(s) {
                return Err(format!("unknown region {s:?}"));
            }
            Ok(RegionPattern {
                name: s.into(),
                city: None,
            })
        }
    }
}

pub(crate) fn code(v: i64, low: i64, high: i64) -> Result<u16, String> {
    if (low..=high).contains(&v) {
        u16::try_from(v).map_err(|_| format!("{v} out of range"))
    } else {
        Err(format!("SIP code {v} must be between {low} and {high}"))
    }
}

/// Check a target's `sip:user@host:port;params` with the SIP core's URI parser
/// (`hotline_sip::uri::Uri`, the one the proxy forwards with), then what a target needs on top:
/// `sip:` not `sips:`, no headers, an IP-literal host (no DNS), a port other than 0, and a
/// transport Hotline speaks. Returns (next hop, transport).
pub fn parse_sip_uri(uri: &str) -> Result<(SocketAddr, Transport), (String, Option<String>)> {
    let example = || Some("write e.g. sip:1001@127.0.0.1:5070".to_string());
    if uri.starts_with("sips:") {
        return Err((
            "sips: URIs are not supported".into(),
            Some("use sip: with ;transport=tcp".into()),
        ));
    }
    if !uri.starts_with("sip:") {
        return Err((format!("{uri:?} is not a sip: URI"), example()));
    }
    if uri.contains('?') {
        return Err((
            "URI headers (?...) are not allowed in a target".into(),
            None,
        ));
    }
    let Some(u) = hotline_sip::uri::Uri::parse(uri.as_bytes()) else {
        return Err((
            format!("{uri:?} is not a valid SIP URI (check the host and the port)"),
            example(),
        ));
    };
    let Some(ip) = u.ip() else {
        return Err((
            format!(
                "host {:?} is not an IP address",
                String::from_utf8_lossy(u.host)
            ),
            Some("Hotline does no DNS: write the target's IP address".into()),
        ));
    };
    let addr = SocketAddr::new(ip, u.port.unwrap_or(5060));
    if addr.port() == 0 {
        return Err((format!("port 0 in {uri:?}"), None));
    }
    let transport = match u.transport() {
        Ok(t) => t,
        Err(other) => {
            return Err((
                format!(
                    "transport {:?} is not supported",
                    String::from_utf8_lossy(other).to_ascii_lowercase()
                ),
                Some("use udp or tcp".into()),
            ))
        }
    };
    Ok((addr, transport))
}

pub(crate) fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, l)) => (ip, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("bad prefix length in {s:?}"))?,
        None => max,
    };
    Ok((ip, len))
}

pub(crate) fn dur(
    cx: &mut Ctx<'_>,
    fi: usize,
    key: String,
    v: &Spanned<DurationRaw>,
) -> Option<Duration> {
    match parse_duration(v.get_ref()) {
        Ok(d) => Some(d),
        Err(m) => {
            cx.err(
                fi,
                v.span(),
                key,
                m,
                Some("write e.g. \"20s\" or \"500ms\"".into()),
            );
            None
        }
    }
}
