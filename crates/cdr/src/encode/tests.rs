//! The CSV encoders against the encoders they replaced (kept here, verbatim but
//! for names, as the reference), over generated records: fields with commas, quotes, CR/LF,
//! non-ASCII and every length around the 8-byte words the quoting test reads; timestamps
//! inside and outside years 0000..=9999; numbers up to their maxima.

use proptest::prelude::*;

use super::*;
use crate::record::{AttemptReason, Disposition, HangupSide};

/// The CSV encoders as they were before the word-at-a-time quoting test and the assembled
/// fixed-width runs (commit f58ef39), verbatim.
mod reference {
    use jiff::Timestamp;

    use crate::record::{AttemptRecord, CallRecord};

    pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        out.extend_from_slice(&buf[i..]);
    }

    pub fn write_seconds(out: &mut Vec<u8>, ms: u64) {
        write_u64(out, ms / 1000);
        let r = (ms % 1000) as u32;
        out.push(b'.');
        out.push(b'0' + (r / 100) as u8);
        out.push(b'0' + (r / 10 % 10) as u8);
        out.push(b'0' + (r % 10) as u8);
    }

    fn put2(out: &mut [u8], at: usize, v: u32) {
        out[at] = b'0' + (v / 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    }

    pub fn write_ts(out: &mut Vec<u8>, ts: Timestamp) {
        const MS_PER_DAY: i64 = 86_400_000;
        const MAX_FAST_MS: i64 = 253_402_300_799_999;
        const MIN_FAST_MS: i64 = -62_167_219_200_000;
        let ms = ts.as_millisecond();
        if !(MIN_FAST_MS..=MAX_FAST_MS).contains(&ms) {
            out.extend_from_slice(
                ts.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                    .to_string()
                    .as_bytes(),
            );
            return;
        }
        let days = ms.div_euclid(MS_PER_DAY);
        let rem = ms.rem_euclid(MS_PER_DAY) as u32;
        let (y, m, d) = crate::civil::civil_from_days(days);
        let y = y as u32;
        let mut t = *b"0000-00-00T00:00:00.000+00:00";
        put2(&mut t, 0, y / 100);
        put2(&mut t, 2, y % 100);
        put2(&mut t, 5, m);
        put2(&mut t, 8, d);
        let secs = rem / 1000;
        put2(&mut t, 11, secs / 3600);
        put2(&mut t, 14, secs / 60 % 60);
        put2(&mut t, 17, secs % 60);
        let milli = rem % 1000;
        t[20] = b'0' + (milli / 100) as u8;
        put2(&mut t, 21, milli % 100);
        out.extend_from_slice(&t);
    }

    pub fn csv_field(out: &mut Vec<u8>, s: &str) {
        let b = s.as_bytes();
        if !b.iter().any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r')) {
            out.extend_from_slice(b);
            return;
        }
        out.push(b'"');
        for &c in b {
            if c == b'"' {
                out.push(b'"');
            }
            out.push(c);
        }
        out.push(b'"');
    }

    fn csv_opt_ts(out: &mut Vec<u8>, ts: Option<Timestamp>) {
        if let Some(t) = ts {
            write_ts(out, t);
        }
    }

    pub fn call_csv(out: &mut Vec<u8>, c: &CallRecord) {
        for s in [
            &c.record_id,
            &c.call_id,
            &c.number,
            &c.company,
            &c.carrier,
            &c.caller,
            &c.caller_raw,
            &c.caller_province,
            &c.caller_city,
            &c.trunk,
        ] {
            csv_field(out, s);
            out.push(b',');
        }
        write_ts(out, c.start);
        out.push(b',');
        csv_opt_ts(out, c.first_ring);
        out.push(b',');
        csv_opt_ts(out, c.answer);
        out.push(b',');
        write_ts(out, c.end);
        out.push(b',');
        write_seconds(out, c.ring_ms());
        out.push(b',');
        write_seconds(out, c.talk_ms());
        out.push(b',');
        csv_field(out, &c.answered_target);
        out.push(b',');
        write_u64(out, u64::from(c.final_code));
        out.push(b',');
        csv_field(out, &c.reason);
        out.push(b',');
        out.extend_from_slice(c.hangup_side.as_str().as_bytes());
        out.push(b',');
        out.extend_from_slice(c.disposition.as_str().as_bytes());
        out.push(b',');
        csv_field(out, &c.matched_rule);
        out.push(b',');
        write_u64(out, c.config_generation);
        out.push(b',');
        csv_field(out, &c.config_hash);
        out.push(b',');
        write_u64(out, u64::from(c.attempts));
        out.push(b'\n');
    }

    pub fn attempt_csv(out: &mut Vec<u8>, a: &AttemptRecord) {
        csv_field(out, &a.record_id);
        out.push(b',');
        csv_field(out, &a.call_record_id);
        out.push(b',');
        csv_field(out, &a.call_id);
        out.push(b',');
        write_u64(out, u64::from(a.attempt));
        out.push(b',');
        csv_field(out, &a.target);
        out.push(b',');
        write_ts(out, a.start);
        out.push(b',');
        csv_opt_ts(out, a.first_ring);
        out.push(b',');
        csv_opt_ts(out, a.answer);
        out.push(b',');
        write_ts(out, a.end);
        out.push(b',');
        write_seconds(out, a.ring_ms());
        out.push(b',');
        write_seconds(out, a.talk_ms());
        out.push(b',');
        write_u64(out, u64::from(a.code));
        out.push(b',');
        out.extend_from_slice(a.reason.as_str().as_bytes());
        out.push(b',');
        csv_field(out, &a.number);
        out.push(b'\n');
    }
}

/// A field: mostly what CDRs hold, often the bytes that force quoting, at every length
/// from empty to a few words (the word test's edges: 0..=7 bytes by byte, 8, 9..=15 with an
/// overlapping last word, ...).
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9@.:_+-]{0,40}",
        3 => "[a-z0-9,\"\r\n -]{0,40}",
        2 => "(\\PC|[,\"\r\n])*",
        1 => "[上海深圳联通移动电信广东,\"]{0,12}",
        1 => Just(String::new()),
    ]
}

/// Timestamps mostly in this century, sometimes anywhere jiff can represent (the slow path
/// outside years 0000..=9999).
fn ts() -> impl Strategy<Value = Timestamp> {
    let near = 1_700_000_000_000i64..1_900_000_000_000;
    let far = Timestamp::MIN.as_millisecond()..=Timestamp::MAX.as_millisecond();
    prop_oneof![9 => near, 1 => far]
        .prop_map(|ms| Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH))
}

fn opt_ts() -> impl Strategy<Value = Option<Timestamp>> {
    proptest::option::of(ts())
}

/// A record's four timestamps (start, first ring, answer, end): as a call has them (within
/// an hour of each other, often on one day, sometimes across midnight), or anything.
type Four = (Timestamp, Option<Timestamp>, Option<Timestamp>, Timestamp);

fn four_ts() -> impl Strategy<Value = Four> {
    let offset = || 0i64..3_600_000;
    let call = (
        ts(),
        proptest::option::of(offset()),
        proptest::option::of(offset()),
        offset(),
    )
        .prop_map(|(start, ring, answer, end)| {
            let at = |d: i64| {
                Timestamp::from_millisecond(start.as_millisecond().saturating_add(d))
                    .unwrap_or(start)
            };
            (start, ring.map(at), answer.map(at), at(end))
        });
    prop_oneof![3 => call, 1 => (ts(), opt_ts(), opt_ts(), ts())]
}

fn code() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), 100u16..700, any::<u16>()]
}

fn u64_any() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..10, 0u64..100_000, any::<u64>(), Just(u64::MAX)]
}

fn u32_any() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..10, any::<u32>(), Just(u32::MAX)]
}

prop_compose! {
    fn call_record()(
        strs in proptest::collection::vec(field(), 14),
        t in four_ts(),
        final_code in code(),
        side in proptest::sample::select(HangupSide::ALL),
        disposition in proptest::sample::select(Disposition::ALL),
        config_generation in u64_any(),
        attempts in u32_any(),
    ) -> CallRecord {
        let mut s = strs.into_iter();
        let mut next = || s.next().unwrap_or_default();
        CallRecord {
            record_id: next(),
            call_id: next(),
            number: next(),
            company: next(),
            carrier: next(),
            caller: next(),
            caller_raw: next(),
            caller_province: next(),
            caller_city: next(),
            trunk: next(),
            start: t.0,
            first_ring: t.1,
            answer: t.2,
            end: t.3,
            answered_target: next(),
            final_code,
            reason: next(),
            hangup_side: side,
            disposition,
            matched_rule: next(),
            config_generation,
            config_hash: next(),
            attempts,
        }
    }
}

prop_compose! {
    fn attempt_record()(
        strs in proptest::collection::vec(field(), 5),
        t in four_ts(),
        attempt in u32_any(),
        code in code(),
        reason in proptest::sample::select(AttemptReason::ALL),
    ) -> AttemptRecord {
        let mut s = strs.into_iter();
        let mut next = || s.next().unwrap_or_default();
        AttemptRecord {
            record_id: next(),
            call_record_id: next(),
            call_id: next(),
            attempt,
            target: next(),
            start: t.0,
            first_ring: t.1,
            answer: t.2,
            end: t.3,
            code,
            reason,
            number: next(),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn call_csv_is_the_reference_byte_for_byte(c in call_record(), prefix in field()) {
        // Appended after whatever the buffer holds, as in the writer.
        let mut new = prefix.clone().into_bytes();
        let mut old = prefix.into_bytes();
        encode_call_csv(&mut new, &c);
        reference::call_csv(&mut old, &c);
        prop_assert_eq!(String::from_utf8_lossy(&new), String::from_utf8_lossy(&old));
        prop_assert_eq!(new, old);
    }

    #[test]
    fn attempt_csv_is_the_reference_byte_for_byte(a in attempt_record(), prefix in field()) {
        let mut new = prefix.clone().into_bytes();
        let mut old = prefix.into_bytes();
        encode_attempt_csv(&mut new, &a);
        reference::attempt_csv(&mut old, &a);
        prop_assert_eq!(String::from_utf8_lossy(&new), String::from_utf8_lossy(&old));
        prop_assert_eq!(new, old);
    }

    #[test]
    fn csv_field_is_the_reference(s in field()) {
        let (mut new, mut old) = (Vec::new(), Vec::new());
        csv_field(&mut new, &s);
        reference::csv_field(&mut old, &s);
        prop_assert_eq!(new, old);
    }

    #[test]
    fn numbers_are_the_reference(v in u64_any(), ms in u64_any()) {
        let (mut new, mut old) = (Vec::new(), Vec::new());
        write_u64(&mut new, v);
        write_seconds(&mut new, ms);
        reference::write_u64(&mut old, v);
        reference::write_seconds(&mut old, ms);
        prop_assert_eq!(&new, &old);
        prop_assert_eq!(String::from_utf8_lossy(&new[..decimal_len(v)]), v.to_string());
    }
}

/// Every field length 0..=40 with one special byte at every position (and none): the word
/// test's boundaries exhaustively, not by chance.
#[test]
fn quoting_at_every_length_and_position() {
    for len in 0..=40usize {
        for special in [None, Some(b','), Some(b'"'), Some(b'\n'), Some(b'\r')] {
            for at in 0..len.max(1) {
                // Bytes just above and below the word test's `-` threshold, and UTF-8.
                let mut s: Vec<u8> = (0..len).map(|i| b"-.+ a9/\xc3\xa9"[i % 8]).collect();
                if let (Some(c), true) = (special, at < len) {
                    s[at] = c;
                }
                let s = String::from_utf8_lossy(&s).into_owned();
                let (mut new, mut old) = (Vec::new(), Vec::new());
                csv_field(&mut new, &s);
                reference::csv_field(&mut old, &s);
                assert_eq!(new, old, "{s:?}");
            }
        }
    }
}

/// Edge values the generators may miss: every power of ten and its neighbours.
#[test]
fn decimal_edges() {
    let mut v = 1u64;
    loop {
        for x in [v - 1, v, v + 1] {
            let (mut new, mut old) = (Vec::new(), Vec::new());
            write_u64(&mut new, x);
            write_seconds(&mut new, x);
            reference::write_u64(&mut old, x);
            reference::write_seconds(&mut old, x);
            assert_eq!(new, old, "{x}");
        }
        match v.checked_mul(10) {
            Some(n) => v = n,
            None => break,
        }
    }
    let (mut new, mut old) = (Vec::new(), Vec::new());
    write_u64(&mut new, u64::MAX);
    reference::write_u64(&mut old, u64::MAX);
    assert_eq!(new, old);
}
