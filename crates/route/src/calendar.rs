//! The China working-day calendar: public holidays (放假) and make-up workdays (调休上班).
//!
//! Built by `hotline-config` from `data/cn_holidays.toml` (embedded) or an ops override file.
//! A date listed as a holiday is a day off even on a weekday; a date listed as a workday is a
//! working day even on a weekend; other dates follow Monday–Friday work, Saturday–Sunday off.

use jiff::civil::{Date, Weekday};

/// What a date is, per the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A working day (a weekday, or a weekend make-up day).
    Workday,
    /// A day off (a weekend, or a public holiday).
    Holiday,
}

/// Sorted holiday and make-up-workday dates.
#[derive(Debug, Clone, Default)]
pub struct Calendar {
    holidays: Vec<(Date, Box<str>)>,
    workdays: Vec<(Date, Box<str>)>,
}

impl Calendar {
    /// Build from (date, festival name) lists; order does not matter.
    pub fn new(
        mut holidays: Vec<(Date, Box<str>)>,
        mut workdays: Vec<(Date, Box<str>)>,
    ) -> Calendar {
        holidays.sort_by_key(|h| h.0);
        workdays.sort_by_key(|h| h.0);
        Calendar { holidays, workdays }
    }

    /// Working day or day off.
    pub fn day_kind(&self, date: Date) -> DayKind {
        if self.workdays.binary_search_by_key(&date, |w| w.0).is_ok() {
            return DayKind::Workday;
        }
        if self.holidays.binary_search_by_key(&date, |w| w.0).is_ok() {
            return DayKind::Holiday;
        }
        match date.weekday() {
            Weekday::Saturday | Weekday::Sunday => DayKind::Holiday,
            _ => DayKind::Workday,
        }
    }

    /// The festival a listed date belongs to (春节, 国庆节 ...), for explanations.
    pub fn festival(&self, date: Date) -> Option<&str> {
        fn find(v: &[(Date, Box<str>)], date: Date) -> Option<&str> {
            v.binary_search_by_key(&date, |w| w.0)
                .ok()
                .map(|i| &*v[i].1)
        }
        find(&self.workdays, date).or_else(|| find(&self.holidays, date))
    }

    /// The last year with any listed date; the State Council publishes the next year's dates
    /// around November, so a calendar whose last year is before the coming year is stale.
    pub fn last_year(&self) -> Option<i16> {
        let h = self.holidays.last().map(|d| d.0.year());
        let w = self.workdays.last().map(|d| d.0.year());
        h.max(w)
    }

    /// The first year with any listed date.
    pub fn first_year(&self) -> Option<i16> {
        let h = self.holidays.first().map(|d| d.0.year());
        let w = self.workdays.first().map(|d| d.0.year());
        match (h, w) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the calendar lists dates for `year`.
    pub fn covers_year(&self, year: i16) -> bool {
        self.holidays.iter().any(|d| d.0.year() == year)
    }

    /// Number of listed dates (holidays, workdays).
    pub fn len(&self) -> (usize, usize) {
        (self.holidays.len(), self.workdays.len())
    }

    /// Whether no dates are listed (then only weekends are days off).
    pub fn is_empty(&self) -> bool {
        self.holidays.is_empty() && self.workdays.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn rules() {
        let cal = Calendar::new(
            vec![(date(2026, 10, 2), "国庆节".into())],
            vec![(date(2026, 2, 14), "春节".into())],
        );
        assert_eq!(cal.day_kind(date(2026, 2, 14)), DayKind::Workday); // Saturday make-up
        assert_eq!(cal.day_kind(date(2026, 2, 15)), DayKind::Holiday); // plain Sunday
        assert_eq!(cal.day_kind(date(2026, 10, 2)), DayKind::Holiday); // Friday holiday
        assert_eq!(cal.day_kind(date(2026, 10, 12)), DayKind::Workday); // plain Monday
        assert_eq!(cal.festival(date(2026, 2, 14)), Some("春节"));
        assert_eq!(cal.last_year(), Some(2026));
        assert_eq!(cal.first_year(), Some(2026));
        assert!(cal.covers_year(2026) && !cal.covers_year(2027));
    }
}
