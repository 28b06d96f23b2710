//! `[calendar]`: the embedded holiday calendar (data/cn_holidays.toml), overrides, and the
//! warning when next year is missing.

use super::*;

/// The embedded holiday calendar (data/cn_holidays.toml).
pub const EMBEDDED_CALENDAR: &str = include_str!("../../../../data/cn_holidays.toml");

pub(crate) fn parse_calendar_tables(
    cx: &mut Ctx<'_>,
    fi: Option<usize>,
    key: &str,
    holidays: &BTreeMap<Spanned<String>, String>,
    workdays: &BTreeMap<Spanned<String>, String>,
    out_h: &mut Vec<(Date, Box<str>)>,
    out_w: &mut Vec<(Date, Box<str>)>,
) {
    for (tbl, out, name) in [
        (holidays, &mut *out_h, "holidays"),
        (workdays, &mut *out_w, "workdays"),
    ] {
        for (d, fest) in tbl {
            match parse_date(d.get_ref()) {
                Ok(date) => out.push((date, fest.as_str().into())),
                Err(m) => match fi {
                    Some(fi) => cx.err(
                        fi,
                        d.span(),
                        format!("{key}.{name}.{}", d.get_ref()),
                        m,
                        None,
                    ),
                    None => cx.errors.push(ConfigError {
                        file: key.to_string(),
                        line: 0,
                        key: format!("{name}.{}", d.get_ref()),
                        message: m,
                        hint: None,
                    }),
                },
            }
        }
    }
}

pub(crate) fn build_calendar(
    cx: &mut Ctx<'_>,
    files: &[(usize, RawFile)],
    read_file: FileReader<'_>,
) -> Calendar {
    let mut holidays = Vec::new();
    let mut workdays = Vec::new();
    let mut base: Option<(String, String)> = None;
    for (fi, f) in files {
        if let Some(c) = &f.calendar {
            if let Some(p) = &c.path {
                match read_file(p.get_ref()) {
                    Ok(text) => base = Some((p.get_ref().clone(), text)),
                    Err(m) => cx.err(
                        *fi,
                        p.span(),
                        "calendar.path",
                        format!("cannot read calendar {:?}: {m}", p.get_ref()),
                        Some("remove `path` to use the embedded 2004-2026 calendar".into()),
                    ),
                }
            }
        }
    }
    let (name, text) = base.unwrap_or_else(|| {
        (
            "<embedded cn_holidays.toml>".into(),
            EMBEDDED_CALENDAR.into(),
        )
    });
    match toml::from_str::<RawCalendarFile>(&text) {
        Ok(raw) => parse_calendar_tables(
            cx,
            None,
            &name,
            &raw.holidays,
            &raw.workdays,
            &mut holidays,
            &mut workdays,
        ),
        Err(e) => cx.errors.push(ConfigError {
            file: name,
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(0),
            key: String::new(),
            message: nonempty(e.message().trim().to_string()),
            hint: Some(
                "the calendar has [holidays] and [workdays] tables of date = \"name\"".into(),
            ),
        }),
    }
    for (fi, f) in files {
        if let Some(c) = &f.calendar {
            parse_calendar_tables(
                cx,
                Some(*fi),
                "calendar",
                &c.holidays,
                &c.workdays,
                &mut holidays,
                &mut workdays,
            );
        }
    }
    Calendar::new(holidays, workdays)
}

/// The warning to give when the calendar does not list the year after `today`'s.
pub fn calendar_warning(calendar: &Calendar, today: Date) -> Option<String> {
    let next = today.year().saturating_add(1);
    if calendar.covers_year(next) {
        return None;
    }
    let last = calendar
        .last_year()
        .map(|y| y.to_string())
        .unwrap_or_else(|| "none".into());
    Some(format!(
        "the holiday calendar does not cover {next} (last year listed: {last}); workday/holiday rules will treat {next} as plain Mon-Fri weeks. Add the State Council's dates under [calendar.holidays] / [calendar.workdays] or set [calendar] path"
    ))
}
