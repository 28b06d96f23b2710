//! Realistic inputs for the micro-benchmarks: carrier-style SIP messages and a generated
//! 100,000-number configuration.

use std::fmt::Write as _;

/// An INVITE as a carrier trunk sends it (China Telecom-style header set, SDP offer): 1 KiB-ish.
pub const INVITE: &str = "INVITE sip:4008001234@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1---3f2c9d7a8b1e4c6d;rport\r\n\
Max-Forwards: 69\r\n\
Contact: <sip:13807912345@10.20.30.40:5060;transport=udp>\r\n\
To: <sip:4008001234@127.0.0.1:5060>\r\n\
From: \"13807912345\"<sip:13807912345@10.20.30.40:5060>;tag=7c3a91f2\r\n\
Call-ID: ZDJhNzM5YjI0ZWQ5NDFiYzg0NmU3MmQwYjg1ZTJmMDU.@10.20.30.40\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE, UPDATE, PRACK\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Min-SE: 90\r\n\
P-Asserted-Identity: <sip:+8613807912345@10.20.30.40>\r\n\
P-Charging-Vector: icid-value=AyretyU0dm+6O2IrT5tAFrbHLso=;orig-ioi=jx.ctcc.cn\r\n\
User-Agent: CTCC-SBC/V300R001\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 228\r\n\
\r\n\
v=0\r\n\
o=- 3868123456 3868123456 IN IP4 10.20.30.41\r\n\
s=-\r\n\
c=IN IP4 10.20.30.41\r\n\
t=0 0\r\n\
m=audio 31000 RTP/AVP 8 0 18 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

/// The 200 OK a desk phone returns to Hotline's forwarded INVITE (two Vias: ours on top).
pub const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-hl9f3e2d1c0b0a0908-1;rport=5060\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1---3f2c9d7a8b1e4c6d;rport=5060;received=10.20.30.40\r\n\
Record-Route: <sip:127.0.0.1:5060;lr>\r\n\
From: \"13807912345\"<sip:13807912345@10.20.30.40:5060>;tag=7c3a91f2\r\n\
To: <sip:4008001234@127.0.0.1:5060>;tag=as1f2e3d4c\r\n\
Call-ID: ZDJhNzM5YjI0ZWQ5NDFiYzg0NmU3MmQwYjg1ZTJmMDU.@10.20.30.40\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:1001@127.0.0.1:5070>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
Supported: replaces, timer\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Require: timer\r\n\
Server: Yealink SIP-T46U 108.86.0.45\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 151\r\n\
\r\n\
v=0\r\n\
o=- 20 20 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 11780 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// Shape of the generated routing table.
#[derive(Debug, Clone, Copy)]
pub struct TableShape {
    pub numbers: usize,
    pub targets: usize,
    pub plans: usize,
    /// Add a global anti-harassment limit (a live-state write per resolve).
    pub harassment: bool,
}

impl Default for TableShape {
    fn default() -> Self {
        TableShape {
            numbers: 100_000,
            targets: 400,
            plans: 60,
            harassment: false,
        }
    }
}

/// The i-th generated 400 number (carrier digit 8: 4008000000 + i).
pub fn number(i: usize) -> String {
    format!("{}", 4_008_000_000u64 + i as u64)
}

/// A TOML config with `shape.numbers` numbers and a realistic mix: 60 % plain (plan only),
/// 25 % an office-hours rule (workday + two time windows), 10 % a region rule plus a VIP-list
/// rule, 5 % a per-number blacklist; a global blacklist of prefixes; named lists; plans that
/// are sequential or simultaneous with every strategy. Companies hold 5 numbers each.
pub fn table_toml(shape: TableShape) -> String {
    let mut s = String::with_capacity(shape.numbers * 200);
    s.push_str(
        "[server]\nlisten = [\"127.0.0.1:5060\"]\nadmin = \"off\"\n\n\
[[server.trunks]]\nname = \"ct\"\nsources = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\ntrusted = true\n\n\
[lists.vip]\nvip = true\nnumbers = [\"13900000001\", \"13900000002\", \"13900000003\"]\n\n\
[lists.nuisance]\nprefixes = [\"1700\", \"1710\", \"1705\", \"1709\"]\n\n\
[lists.partners]\nprefixes = [\"1380791\", \"0791\"]\n\n\
[screening]\nblacklist = { lists = [\"nuisance\"], prefixes = [\"1650\", \"1670\"] }\n",
    );
    if shape.harassment {
        s.push_str(
            "[screening.harassment]\nper_caller_number = { calls = 50, window = \"1m\" }\nblock_for = \"1m\"\n",
        );
    }
    s.push('\n');
    for t in 0..shape.targets {
        let port = 5070 + (t % 50);
        let _ = writeln!(
            s,
            "[targets.t{t}]\nuri = \"sip:{}@127.0.0.{}:{port}\"\n",
            1000 + t,
            1 + t / 50
        );
    }
    let strategies = [
        "linear",
        "round_robin",
        "random",
        "weighted",
        "least_recent",
        "fewest_calls",
    ];
    for p in 0..shape.plans {
        let members = 2 + p % 4;
        let list: Vec<String> = (0..members)
            .map(|m| format!("\"t{}\"", (p * 7 + m) % shape.targets.max(1)))
            .collect();
        let mode = if p % 5 == 4 {
            "simultaneous"
        } else {
            "sequential"
        };
        let _ = writeln!(
            s,
            "[plans.p{p}]\n[[plans.p{p}.groups]]\nmode = \"{mode}\"\nstrategy = \"{}\"\nring_timeout = \"15s\"\nmembers = [{}]\n",
            strategies[p % strategies.len()],
            list.join(", ")
        );
    }
    let plans = shape.plans.max(1);
    for c in 0..shape.numbers.div_ceil(5) {
        let _ = writeln!(s, "[companies.c{c}]\nname = \"公司 {c}\"\n");
    }
    for i in 0..shape.numbers {
        let n = number(i);
        let _ = writeln!(
            s,
            "[numbers.\"{n}\"]\ncompany = \"c{}\"\nplan = \"p{}\"",
            i / 5,
            i % plans
        );
        match i % 20 {
            0..=11 => {}
            12..=16 => {
                let _ = writeln!(
                    s,
                    "rules = [{{ name = \"office\", day = \"workday\", time = [\"09:00-12:00\", \"13:30-18:00\"], plan = \"p{}\" }}]",
                    (i + 1) % plans
                );
            }
            17 | 18 => {
                let _ = writeln!(
                    s,
                    "rules = [{{ name = \"vip\", vip = true, plan = \"p{}\" }}, {{ name = \"jx\", region = [\"江西\"], plan = \"p{}\" }}, {{ name = \"partners\", list = \"partners\", weekdays = \"mon-fri\", plan = \"p{}\" }}]",
                    (i + 2) % plans,
                    (i + 3) % plans,
                    (i + 4) % plans
                );
            }
            _ => {
                let _ = writeln!(
                    s,
                    "screening = {{ blacklist = {{ numbers = [\"13811112222\"], area_codes = [\"0898\"] }} }}"
                );
            }
        }
        s.push('\n');
    }
    s
}

/// Deterministic callers for resolve: mobiles from several provinces, fixed lines, VIPs,
/// blacklisted prefixes (about 2 %).
pub fn caller(i: u64) -> String {
    match i % 50 {
        0 => "17001234567".to_string(),
        1 => format!("13900000{:03}", 1 + i % 3),
        2..=9 => format!("0791{:08}", 80_000_000 + i % 9_999_999),
        10..=19 => format!("1380791{:04}", i % 10_000),
        _ => format!("13{}{:08}", 5 + i % 5, (i * 7919) % 100_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use hotline_sip::Message;

    #[test]
    fn fixtures_parse_with_matching_content_length() {
        for text in [INVITE, OK_200] {
            let m = Message::parse(Bytes::from_static(text.as_bytes())).expect("fixture parses");
            assert_eq!(m.content_length(), Some(m.body().len() as u32));
        }
    }

    #[test]
    fn generated_table_compiles() {
        let shape = TableShape {
            numbers: 500,
            targets: 40,
            plans: 12,
            harassment: true,
        };
        let c = hotline_config::from_toml_str(
            &table_toml(shape),
            "gen.toml",
            1,
            jiff::civil::date(2026, 11, 24),
        )
        .expect("generated config compiles");
        assert_eq!(c.table.len(), 500);
    }
}
