//! Deterministic synthetic traffic for tests, benchmarks and demos (no `rand` dependency: a
//! xorshift generator seeded by the caller). Not used on the call path.

use jiff::Timestamp;

use crate::record::{
    attempt_record_id, AttemptReason, AttemptRecord, CallRecord, Disposition, HangupSide,
};

/// xorshift64* pseudo-random numbers.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub const NUMBERS: &[(&str, &str, &str)] = &[
    ("4008001234", "上海示例科技有限公司", "联通"),
    ("4008005678", "北京样例贸易有限公司", "电信"),
    ("4006001111", "广州测试服务有限公司", "移动"),
];

pub const REGIONS: &[(&str, &str)] = &[
    ("广东", "广州"),
    ("广东", "深圳"),
    ("北京", "北京"),
    ("上海", "上海"),
    ("浙江", "杭州"),
    ("江苏", "南京"),
    ("四川", "成都"),
    ("湖北", "武汉"),
    ("", ""),
];

pub const TARGETS: &[&str] = &[
    "sip:1001@10.0.0.1:5060",
    "sip:1002@10.0.0.2:5060",
    "sip:13800138000@10.0.0.9:5060",
];

/// Make `n` calls starting at `from`, one every `step_ms`, each with its attempt records.
/// About 70 % answered; callers come from a pool of `caller_pool` numbers so repeats occur.
pub fn calls(
    seed: u64,
    n: usize,
    from: Timestamp,
    step_ms: i64,
    caller_pool: u64,
) -> impl Iterator<Item = (CallRecord, Vec<AttemptRecord>)> {
    let mut rng = Rng::new(seed);
    let base = from.as_millisecond();
    (0..n).map(move |i| one(&mut rng, i, base + i as i64 * step_ms, caller_pool))
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn one(
    rng: &mut Rng,
    i: usize,
    start_ms: i64,
    caller_pool: u64,
) -> (CallRecord, Vec<AttemptRecord>) {
    let (number, company, carrier) = NUMBERS[rng.below(NUMBERS.len() as u64) as usize];
    let (prov, city) = REGIONS[rng.below(REGIONS.len() as u64) as usize];
    let caller = format!("139{:08}", rng.below(caller_pool.max(1)));
    let record_id = format!("synth-{start_ms}-{i}");
    let roll = rng.below(100);
    let disposition = match roll {
        0..=69 => Disposition::Answered,
        70..=79 => Disposition::NoAnswer,
        80..=86 => Disposition::Busy,
        87..=91 => Disposition::Cancelled,
        92..=94 => Disposition::Failed,
        95..=96 => Disposition::BlockedList,
        97 => Disposition::BlockedRate,
        _ => Disposition::Limit,
    };
    let blocked = matches!(
        disposition,
        Disposition::BlockedList | Disposition::BlockedRate | Disposition::Limit
    );
    let attempts_n = if blocked { 0 } else { 1 + rng.below(3) as u32 };
    let mut t = start_ms + 20 + rng.below(200) as i64;
    let mut attempts = Vec::new();
    let mut first_ring = None;
    let mut answer = None;
    let mut answered_target = String::new();
    for a in 1..=attempts_n {
        let target = TARGETS[((a - 1) as usize + i) % TARGETS.len()];
        let last = a == attempts_n;
        let a_start = t;
        let ring = a_start + 50 + rng.below(500) as i64;
        first_ring.get_or_insert(ring);
        let (a_answer, a_end, code, reason) = if last && disposition == Disposition::Answered {
            let ans = ring + 1000 + rng.below(20_000) as i64;
            let talk = if rng.below(10) == 0 {
                0
            } else {
                rng.below(600_000) as i64
            };
            (Some(ans), ans + talk, 200, AttemptReason::Answered)
        } else if last && disposition == Disposition::Busy {
            (None, ring + 100, 486, AttemptReason::Busy)
        } else if last && disposition == Disposition::Cancelled {
            (None, ring + 5000, 487, AttemptReason::CancelledByCaller)
        } else if last && disposition == Disposition::Failed {
            (None, a_start + 32_000, 0, AttemptReason::Unreachable)
        } else {
            (None, ring + 20_000, 408, AttemptReason::Timeout)
        };
        if let Some(x) = a_answer {
            answer = Some(x);
            answered_target = target.to_string();
        }
        attempts.push(AttemptRecord {
            record_id: attempt_record_id(&record_id, a),
            call_record_id: record_id.clone(),
            call_id: format!("{i}-{start_ms}@synth"),
            attempt: a,
            target: target.to_string(),
            start: ts(a_start),
            first_ring: Some(ts(ring)),
            answer: a_answer.map(ts),
            end: ts(a_end),
            code,
            reason,
            number: number.to_string(),
        });
        t = a_end + 5;
    }
    let end = if attempts_n == 0 { start_ms + 5 } else { t - 5 };
    let (final_code, reason, hangup) = match disposition {
        Disposition::Answered => (
            200,
            "OK",
            if rng.below(2) == 0 {
                HangupSide::Caller
            } else {
                HangupSide::Callee
            },
        ),
        Disposition::Busy => (486, "Busy Here", HangupSide::None),
        Disposition::NoAnswer => (480, "Temporarily Unavailable", HangupSide::None),
        Disposition::Cancelled => (487, "Request Terminated", HangupSide::Caller),
        Disposition::Failed => (503, "Service Unavailable", HangupSide::None),
        Disposition::BlockedList => (403, "Forbidden, \"blocked\"", HangupSide::System),
        Disposition::BlockedRate => (503, "Rate limited", HangupSide::System),
        Disposition::Limit => (486, "Limit reached", HangupSide::System),
    };
    let call = CallRecord {
        record_id,
        call_id: format!("{i}-{start_ms}@synth"),
        number: number.to_string(),
        company: company.to_string(),
        carrier: carrier.to_string(),
        caller: caller.clone(),
        caller_raw: format!("+86{caller}"),
        caller_province: prov.to_string(),
        caller_city: city.to_string(),
        trunk: "ct-sh-1".to_string(),
        start: ts(start_ms),
        first_ring: first_ring.map(ts),
        answer: answer.map(ts),
        end: ts(end),
        answered_target,
        final_code,
        reason: reason.to_string(),
        hangup_side: hangup,
        disposition,
        matched_rule: if rng.below(2) == 0 {
            "workday".into()
        } else {
            "default".into()
        },
        config_generation: 7,
        config_hash: "3f2a9c".to_string(),
        attempts: attempts_n,
    };
    (call, attempts)
}
