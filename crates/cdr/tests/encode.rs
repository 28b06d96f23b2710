//! Encoders byte for byte.

use hotline_cdr::encode::{encode, write_preamble};
use hotline_cdr::{
    AttemptReason, AttemptRecord, CallRecord, Disposition, Format, HangupSide, Kind, Record,
};
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn call() -> CallRecord {
    CallRecord {
        record_id: "n1-1795860000123-42".into(),
        call_id: "a84b4c76e66710@pc33".into(),
        number: "4008001234".into(),
        company: "上海示例, \"科技\"".into(),
        carrier: "联通".into(),
        caller: "13912345678".into(),
        caller_raw: "+8613912345678".into(),
        caller_province: "广东".into(),
        caller_city: "深圳".into(),
        trunk: "ct-sh-1".into(),
        start: ts("2026-11-24T10:00:00.123Z"),
        first_ring: Some(ts("2026-11-24T10:00:01.5Z")),
        answer: Some(ts("2026-11-24T10:00:05.000Z")),
        end: ts("2026-11-24T10:01:06.001Z"),
        answered_target: "sip:1001@10.0.0.1:5060".into(),
        final_code: 200,
        reason: "OK\nline2".into(),
        hangup_side: HangupSide::Caller,
        disposition: Disposition::Answered,
        matched_rule: "workday".into(),
        config_generation: 7,
        config_hash: "3f2a".into(),
        attempts: 2,
    }
}

fn attempt() -> AttemptRecord {
    AttemptRecord {
        record_id: "n1-1795860000123-42-a1".into(),
        call_record_id: "n1-1795860000123-42".into(),
        call_id: "a84b4c76e66710@pc33".into(),
        attempt: 1,
        target: "sip:1002@10.0.0.2".into(),
        start: ts("2026-11-24T10:00:00.200Z"),
        first_ring: None,
        answer: None,
        end: ts("2026-11-24T10:00:00.900Z"),
        code: 486,
        reason: AttemptReason::Busy,
        number: "4008001234".into(),
    }
}

#[test]
fn csv_call_exact_bytes() {
    let mut out = Vec::new();
    write_preamble(&mut out, Format::Csv, Kind::Call);
    encode(&mut out, Format::Csv, &Record::Call(call()));
    let expected = "\u{FEFF}record_id,call_id,number,company,carrier,caller,caller_raw,caller_province,caller_city,trunk,start,first_ring,answer,end,ring_seconds,talk_seconds,answered_target,final_code,reason,hangup_side,disposition,matched_rule,config_generation,config_hash,attempts\n\
n1-1795860000123-42,a84b4c76e66710@pc33,4008001234,\"上海示例, \"\"科技\"\"\",联通,13912345678,+8613912345678,广东,深圳,ct-sh-1,2026-11-24T10:00:00.123+00:00,2026-11-24T10:00:01.500+00:00,2026-11-24T10:00:05.000+00:00,2026-11-24T10:01:06.001+00:00,3.500,61.001,sip:1001@10.0.0.1:5060,200,\"OK\nline2\",caller,answered,workday,7,3f2a,2\n";
    assert_eq!(String::from_utf8_lossy(&out), expected);
    assert_eq!(&out[..3], b"\xEF\xBB\xBF");
}

#[test]
fn csv_attempt_exact_bytes() {
    let mut out = Vec::new();
    encode(&mut out, Format::Csv, &Record::Attempt(attempt()));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "n1-1795860000123-42-a1,n1-1795860000123-42,a84b4c76e66710@pc33,1,sip:1002@10.0.0.2,2026-11-24T10:00:00.200+00:00,,,2026-11-24T10:00:00.900+00:00,0.000,0.000,486,busy,4008001234\n"
    );
}

#[test]
fn jsonl_exact_bytes_and_valid_json() {
    let mut out = Vec::new();
    write_preamble(&mut out, Format::Jsonl, Kind::Call);
    assert!(out.is_empty(), "JSON Lines files have no preamble");
    let mut c = call();
    c.reason = "tab\there \\ \u{1} \"q\"".into();
    encode(&mut out, Format::Jsonl, &Record::Call(c));
    let expected = "{\"v\":1,\"kind\":\"call\",\"record_id\":\"n1-1795860000123-42\",\"call_id\":\"a84b4c76e66710@pc33\",\"number\":\"4008001234\",\"company\":\"上海示例, \\\"科技\\\"\",\"carrier\":\"联通\",\"caller\":\"13912345678\",\"caller_raw\":\"+8613912345678\",\"caller_province\":\"广东\",\"caller_city\":\"深圳\",\"trunk\":\"ct-sh-1\",\"start\":\"2026-11-24T10:00:00.123+00:00\",\"first_ring\":\"2026-11-24T10:00:01.500+00:00\",\"answer\":\"2026-11-24T10:00:05.000+00:00\",\"end\":\"2026-11-24T10:01:06.001+00:00\",\"ring_seconds\":3.500,\"talk_seconds\":61.001,\"answered_target\":\"sip:1001@10.0.0.1:5060\",\"final_code\":200,\"reason\":\"tab\\there \\\\ \\u0001 \\\"q\\\"\",\"hangup_side\":\"caller\",\"disposition\":\"answered\",\"matched_rule\":\"workday\",\"config_generation\":7,\"config_hash\":\"3f2a\",\"attempts\":2}\n";
    assert_eq!(String::from_utf8_lossy(&out), expected);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    assert_eq!(v["reason"], "tab\there \\ \u{1} \"q\"");
    assert_eq!(v["talk_seconds"], 61.001);

    let mut out = Vec::new();
    encode(&mut out, Format::Jsonl, &Record::Attempt(attempt()));
    assert_eq!(
        String::from_utf8_lossy(&out),
        "{\"v\":1,\"kind\":\"attempt\",\"record_id\":\"n1-1795860000123-42-a1\",\"call_record_id\":\"n1-1795860000123-42\",\"call_id\":\"a84b4c76e66710@pc33\",\"attempt\":1,\"target\":\"sip:1002@10.0.0.2\",\"start\":\"2026-11-24T10:00:00.200+00:00\",\"first_ring\":null,\"answer\":null,\"end\":\"2026-11-24T10:00:00.900+00:00\",\"ring_seconds\":0.000,\"talk_seconds\":0.000,\"code\":486,\"reason\":\"busy\",\"number\":\"4008001234\"}\n"
    );
}

#[test]
fn decode_inverts_encode_both_formats() {
    use hotline_cdr::decode::{self, CsvLayout, CsvRow};
    for (c, a) in hotline_cdr::synth::calls(9, 200, ts("2026-11-24T10:00:00Z"), 1000, 50) {
        // CSV
        let mut data = Vec::new();
        write_preamble(&mut data, Format::Csv, Kind::Call);
        encode(&mut data, Format::Csv, &Record::Call(c.clone()));
        let mut row = CsvRow::default();
        let start = decode::skip_bom(&data);
        let next = decode::split_csv(&data, start, &mut row).unwrap_or(0);
        let layout = CsvLayout::from_header(Kind::Call, &data, &row);
        assert!(layout.is_ok());
        let Ok(layout) = layout else { return };
        assert_eq!(decode::split_csv(&data, next, &mut row), Some(data.len()));
        let mut back = CallRecord::empty(Timestamp::UNIX_EPOCH);
        assert_eq!(
            decode::call_from_csv(&layout, &row, &data, &mut back),
            Ok(())
        );
        assert_eq!(back, c);
        // JSON Lines
        let mut data = Vec::new();
        encode(&mut data, Format::Jsonl, &Record::Call(c.clone()));
        let mut back = CallRecord::empty(Timestamp::UNIX_EPOCH);
        let mut back_a = AttemptRecord::empty(Timestamp::UNIX_EPOCH);
        assert!(decode::from_json_line(
            &data[..data.len() - 1],
            Kind::Call,
            &mut back,
            &mut back_a
        )
        .is_ok());
        assert_eq!(back, c);
        for at in a {
            let mut data = Vec::new();
            encode(&mut data, Format::Jsonl, &Record::Attempt(at.clone()));
            assert!(matches!(
                decode::from_json_line(&data, Kind::Call, &mut back, &mut back_a),
                Ok(decode::JsonLine::Attempt)
            ));
            assert_eq!(back_a, at);
        }
    }
}
