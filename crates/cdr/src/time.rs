//! Fast timestamp text: `2026-11-24T10:00:00.123+00:00` (UTC, explicit offset, milliseconds).
//!
//! The writer formats two to four timestamps per record and the reader parses them for every
//! record of a 10-million-record scan, so both directions have an allocation-free fast path for
//! years 0000..=9999 and fall back to jiff for anything else.

use jiff::Timestamp;

pub(crate) use crate::civil::{civil_from_days, days_from_civil};

/// Length of the fixed format.
pub const TS_LEN: usize = 29;

const MS_PER_DAY: i64 = 86_400_000;
/// 9999-12-31T23:59:59.999Z
const MAX_FAST_MS: i64 = 253_402_300_799_999;
/// 0000-01-01T00:00:00.000Z
const MIN_FAST_MS: i64 = -62_167_219_200_000;

/// "00" "01" .. "99": two digits per lookup instead of a division and a remainder each.
static PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

#[inline]
fn put2(out: &mut [u8], at: usize, v: u32) {
    let i = v as usize * 2;
    out[at] = PAIRS[i];
    out[at + 1] = PAIRS[i + 1];
}

/// Append `ts` in the fixed format (millisecond precision, sub-millisecond digits truncated).
pub fn write_ts(out: &mut Vec<u8>, ts: Timestamp) {
    match TsFormat::new().fixed(ts) {
        Some(t) => out.extend_from_slice(&t),
        // Outside 0000..=9999: jiff's own rendering, still RFC 3339.
        None => out.extend_from_slice(
            ts.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string()
                .as_bytes(),
        ),
    }
}

/// Renders timestamps in the fixed format, remembering the last one's date: a record's
/// timestamps mostly fall on one day, whose calendar date is then worked out once.
pub(crate) struct TsFormat {
    day: i64,
    date: [u8; 10],
}

impl TsFormat {
    #[inline]
    pub(crate) fn new() -> TsFormat {
        TsFormat {
            // No timestamp of the fast range is on this day.
            day: i64::MIN,
            date: *b"0000-00-00",
        }
    }

    /// `ts` in the fixed format, filled in place (a push per byte checked the capacity 29
    /// times); `None` outside years 0000..=9999, which [`write_ts`] leaves to jiff.
    #[inline]
    pub(crate) fn fixed(&mut self, ts: Timestamp) -> Option<[u8; TS_LEN]> {
        let ms = ts.as_millisecond();
        if !(MIN_FAST_MS..=MAX_FAST_MS).contains(&ms) {
            return None;
        }
        let days = ms.div_euclid(MS_PER_DAY);
        let rem = ms.rem_euclid(MS_PER_DAY) as u32;
        if days != self.day {
            let (y, m, d) = civil_from_days(days);
            let y = y as u32; // 0..=9999 by the range check
            put2(&mut self.date, 0, y / 100);
            put2(&mut self.date, 2, y % 100);
            put2(&mut self.date, 5, m);
            put2(&mut self.date, 8, d);
            self.day = days;
        }
        let mut t = *b"0000-00-00T00:00:00.000+00:00";
        t[..10].copy_from_slice(&self.date);
        let secs = rem / 1000;
        put2(&mut t, 11, secs / 3600);
        put2(&mut t, 14, secs / 60 % 60);
        put2(&mut t, 17, secs % 60);
        let milli = rem % 1000;
        t[20] = b'0' + (milli / 100) as u8;
        put2(&mut t, 21, milli % 100);
        Some(t)
    }
}

/// `ts` in the fixed format as a String.
pub fn format_ts(ts: Timestamp) -> String {
    let mut v = Vec::with_capacity(TS_LEN);
    write_ts(&mut v, ts);
    String::from_utf8(v).unwrap_or_default()
}

#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parse a timestamp: fast path for the fixed format, otherwise any RFC 3339 / jiff timestamp.
pub fn parse_ts(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() == TS_LEN
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && &b[23..] == b"+00:00"
    {
        let y = digits(&b[0..4])?;
        let mo = digits(&b[5..7])?;
        let d = digits(&b[8..10])?;
        let h = digits(&b[11..13])?;
        let mi = digits(&b[14..16])?;
        let se = digits(&b[17..19])?;
        let ms = digits(&b[20..23])?;
        if (1..=12).contains(&mo)
            && d >= 1
            && d <= days_in_month(i64::from(y), mo)
            && h < 24
            && mi < 60
            && se < 60
        {
            let days = days_from_civil(i64::from(y), mo, d);
            let total = days * MS_PER_DAY
                + i64::from(h) * 3_600_000
                + i64::from(mi) * 60_000
                + i64::from(se) * 1000
                + i64::from(ms);
            return Timestamp::from_millisecond(total).ok();
        }
        return None;
    }
    s.parse::<Timestamp>().ok()
}

pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_utc_with_offset() {
        let ts: Timestamp = "2026-11-24T10:00:00.123Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(format_ts(ts), "2026-11-24T10:00:00.123+00:00");
        assert_eq!(
            format_ts(Timestamp::UNIX_EPOCH),
            "1970-01-01T00:00:00.000+00:00"
        );
        let neg = Timestamp::from_millisecond(-1).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(format_ts(neg), "1969-12-31T23:59:59.999+00:00");
    }

    #[test]
    fn round_trips_against_jiff() {
        // Every ~17 hours over 60 years plus leap days; compare with jiff both ways.
        let mut ms: i64 = -5_000_000_000_000;
        while ms < 4_000_000_000_000 {
            let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
            let s = format_ts(ts);
            let via_jiff = ts.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string();
            assert_eq!(s, via_jiff);
            assert_eq!(parse_ts(&s), Some(ts));
            ms += 61_234_567;
        }
    }

    #[test]
    fn parse_rejects_garbage_and_accepts_other_rfc3339() {
        assert_eq!(parse_ts("2026-13-24T10:00:00.123+00:00"), None);
        assert_eq!(parse_ts("2026-02-30T10:00:00.123+00:00"), None);
        assert_eq!(parse_ts("2026-11-24T10:00:0x.123+00:00"), None);
        assert_eq!(parse_ts(""), None);
        let other = parse_ts("2026-11-24T18:00:00+08:00");
        assert_eq!(
            other.map(format_ts).as_deref(),
            Some("2026-11-24T10:00:00.000+00:00")
        );
    }
}
