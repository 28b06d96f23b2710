//! A rule's conditions in one place: what they are ([`Conditions`], built by `hotline-config`),
//! how a call is checked against them (`check`, first failing condition as a [`Miss`]), and
//! how `explain` words them (`describe`, `miss_reason`). A new kind of condition is a field
//! here, its check and its wording here, plus its TOML key and checks in the config crate.

use jiff::civil::{Date, DateTime};
use serde::Serialize;

use crate::calendar::{Calendar, DayKind};
use crate::number::Caller;
use crate::region::Region;
use crate::table::{ListId, RegionPattern, RouteTable, TimeRange, Weekdays};

/// Conditions of a rule; all present conditions must hold (AND), each list matches any of its
/// items (OR). An empty `Conditions` always matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Conditions {
    /// Days of the week (of the window's start day for overnight ranges).
    pub weekdays: Option<Weekdays>,
    /// Time-of-day windows.
    pub times: Vec<TimeRange>,
    /// Inclusive date ranges.
    pub dates: Vec<(Date, Date)>,
    /// Working day or day off per the holiday calendar.
    pub day: Option<DayKind>,
    /// Caller regions.
    pub regions: Vec<RegionPattern>,
    /// Caller is on any of these named lists.
    pub lists: Vec<ListId>,
    /// Caller is on any VIP list.
    pub vip: Option<bool>,
    /// IVR key pressed (from the Request-URI `ivr` parameter), any of these.
    pub keys: Vec<u8>,
}

impl Conditions {
    /// No condition at all: the rule always matches.
    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// The rule depends on the time: weekdays, time of day, dates or the holiday calendar.
    pub fn is_time_based(&self) -> bool {
        self.weekdays.is_some()
            || !self.times.is_empty()
            || !self.dates.is_empty()
            || self.day.is_some()
    }
}

/// Why a rule did not match (the first failing condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Miss {
    /// Outside every time window.
    Time,
    /// Wrong day of the week.
    Weekday,
    /// Outside every date range.
    Date,
    /// The calendar says the other kind of day.
    Day(DayKind),
    /// Caller region not listed (or unknown).
    Region,
    /// Caller on none of the lists.
    List,
    /// Caller VIP status differs.
    Vip,
    /// No IVR key, or a different one.
    Key,
}

/// Inputs to rule evaluation, computed once per call.
pub(crate) struct Env<'a> {
    pub local: DateTime,
    pub calendar: &'a Calendar,
    pub caller: &'a Caller,
    pub region: Option<&'a Region>,
    pub vip: bool,
    pub key: Option<u8>,
    pub table: &'a RouteTable,
}

fn day_ok(c: &Conditions, env: &Env<'_>, date: Date) -> Result<(), Miss> {
    if let Some(w) = c.weekdays {
        if !w.contains(date.weekday()) {
            return Err(Miss::Weekday);
        }
    }
    if !c.dates.is_empty() && !c.dates.iter().any(|(a, b)| *a <= date && date <= *b) {
        return Err(Miss::Date);
    }
    if let Some(kind) = c.day {
        let actual = env.calendar.day_kind(date);
        if actual != kind {
            return Err(Miss::Day(actual));
        }
    }
    Ok(())
}

/// Evaluate a rule's conditions. Overnight windows (22:00-06:00) belong to the day they start:
/// at 02:00 Saturday, `weekdays = ["fri"]` with `22:00-06:00` matches.
pub(crate) fn check(c: &Conditions, env: &Env<'_>) -> Result<(), Miss> {
    if !c.keys.is_empty() && !env.key.is_some_and(|k| c.keys.contains(&k)) {
        return Err(Miss::Key);
    }
    if let Some(v) = c.vip {
        if v != env.vip {
            return Err(Miss::Vip);
        }
    }
    if !c.regions.is_empty() {
        let Some(r) = env.region else {
            return Err(Miss::Region);
        };
        if !c.regions.iter().any(|p| p.matches(r)) {
            return Err(Miss::Region);
        }
    }
    if !c.lists.is_empty() {
        let lists = env.table.lists();
        let hit = c.lists.iter().any(|id| {
            lists
                .get(id.0 as usize)
                .is_some_and(|l| l.set.hit(lists, env.caller, env.region).is_some())
        });
        if !hit {
            return Err(Miss::List);
        }
    }
    let today = env.local.date();
    if c.times.is_empty() {
        return day_ok(c, env, today);
    }
    let minute = u16::try_from(env.local.hour()).unwrap_or(0) * 60
        + u16::try_from(env.local.minute()).unwrap_or(0);
    let mut last = Err(Miss::Time);
    for r in &c.times {
        let anchor = if r.overnight() {
            if minute >= r.start {
                Some(today)
            } else if minute < r.end {
                today.yesterday().ok()
            } else {
                None
            }
        } else if r.start <= minute && minute < r.end {
            Some(today)
        } else {
            None
        };
        if let Some(d) = anchor {
            match day_ok(c, env, d) {
                Ok(()) => return Ok(()),
                Err(m) => last = Err(m),
            }
        }
    }
    last
}

pub(crate) fn describe(c: &Conditions, table: &RouteTable) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(w) = c.weekdays {
        let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let days: Vec<&str> = (0..7)
            .filter(|i| w.0 & (1 << i) != 0)
            .map(|i| names[i])
            .collect();
        parts.push(format!("weekdays {}", days.join(",")));
    }
    if !c.times.is_empty() {
        let t: Vec<String> = c.times.iter().map(|t| t.to_string()).collect();
        parts.push(format!("time {}", t.join(",")));
    }
    if !c.dates.is_empty() {
        let d: Vec<String> = c
            .dates
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}..{b}")
                }
            })
            .collect();
        parts.push(format!("dates {}", d.join(",")));
    }
    if let Some(d) = c.day {
        parts.push(format!("day {}", day_name(d)));
    }
    if !c.regions.is_empty() {
        let r: Vec<String> = c.regions.iter().map(|r| r.to_string()).collect();
        parts.push(format!("region {}", r.join(",")));
    }
    if !c.lists.is_empty() {
        let l: Vec<&str> = c
            .lists
            .iter()
            .filter_map(|id| table.lists().get(id.0 as usize).map(|l| l.name.as_str()))
            .collect();
        parts.push(format!("list {}", l.join(",")));
    }
    if let Some(v) = c.vip {
        parts.push(format!("vip {v}"));
    }
    if !c.keys.is_empty() {
        let k: Vec<String> = c.keys.iter().map(|k| k.to_string()).collect();
        parts.push(format!("key {}", k.join(",")));
    }
    if parts.is_empty() {
        "(always)".into()
    } else {
        parts.join("; ")
    }
}

pub(crate) fn day_name(d: DayKind) -> &'static str {
    match d {
        DayKind::Workday => "workday",
        DayKind::Holiday => "holiday",
    }
}

pub(crate) fn miss_reason(m: Miss, c: &Conditions, env: &Env<'_>) -> String {
    let local = env.local;
    match m {
        Miss::Time => format!(
            "local time {:02}:{:02} is outside every window",
            local.hour(),
            local.minute()
        ),
        Miss::Weekday => format!("{:?} is not one of the weekdays", local.date().weekday()),
        Miss::Date => format!("{} is outside every date range", local.date()),
        Miss::Day(actual) => format!(
            "the day is a {} per the calendar, the rule wants a {}",
            day_name(actual),
            c.day.map(day_name).unwrap_or("?")
        ),
        Miss::Region => match env.region {
            Some(r) => format!("caller region {r} is not listed"),
            None => "caller region is unknown".into(),
        },
        Miss::List => "caller is on none of the lists".into(),
        Miss::Vip => format!("caller VIP status is {}", env.vip),
        Miss::Key => match env.key {
            Some(k) => format!("IVR key {k} is not listed"),
            None => "no IVR key on the Request-URI".into(),
        },
    }
}
