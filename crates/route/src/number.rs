//! Called (400) and calling number normalisation.
//!
//! Neither function allocates: a [`Number400`] is a `u64`, a [`Caller`] keeps its digits in an
//! inline buffer.

use std::fmt;

use serde::Serialize;

/// Why a Request-URI user part is not a 400 (or 1010) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CalledError {
    /// Not exactly 10 digits starting `400`, nor 8 digits starting `1010`, once `+86` / `86`
    /// and visual separators are removed.
    #[error("not a 400 number")]
    NotA400,
}

/// The carrier a 400 number belongs to, from its fourth digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Carrier {
    /// 中国联通: 4000, 4006.
    Unicom,
    /// 中国移动: 4001, 4007.
    Mobile,
    /// 中国电信: 4008, 4009.
    Telecom,
}

impl Carrier {
    /// `unicom` / `mobile` / `telecom`.
    pub fn parse(s: &str) -> Option<Carrier> {
        match s {
            "unicom" => Some(Carrier::Unicom),
            "mobile" => Some(Carrier::Mobile),
            "telecom" => Some(Carrier::Telecom),
            _ => None,
        }
    }

    /// A short lowercase ASCII name (`unicom`, `mobile`, `telecom`) for CDRs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Unicom => "unicom",
            Carrier::Mobile => "mobile",
            Carrier::Telecom => "telecom",
        }
    }

    /// The Chinese name (联通, 移动, 电信).
    pub fn name_zh(self) -> &'static str {
        match self {
            Carrier::Unicom => "联通",
            Carrier::Mobile => "移动",
            Carrier::Telecom => "电信",
        }
    }
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A called national service number: a China 400 number (exactly 10 digits, `400` then a
/// carrier digit) or a 1010 number (8 digits `1010xxxx`, the other national hotline numbers
/// 全国统一号码, whose carrier is configured, not in the number).
///
/// Stored as ASCII digits so [`Number400::as_str`] can borrow without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number400 {
    digits: [u8; 10],
    /// 10 (400) or 8 (1010).
    len: u8,
}

impl Number400 {
    /// The digits, e.g. `"4008001234"` or `"10101234"`.
    pub fn as_str(&self) -> &str {
        // Invariant: only constructed from ASCII digits in `normalize_called`.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or("0000000000")
    }

    /// The number as an integer (handy as a compact map key; 400 and 1010 numbers never meet).
    pub fn as_u64(&self) -> u64 {
        self.as_str()
            .bytes()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'))
    }

    /// A 1010 number (8 digits) rather than a 400 number.
    pub fn is_1010(&self) -> bool {
        self.len == 8
    }

    /// The carrier, from a 400 number's fourth digit (fourth digits no carrier has been
    /// allocated, 4002-4005, are refused by [`normalize_called`]); `None` for a 1010 number,
    /// whose carrier the configuration names.
    pub fn carrier(&self) -> Option<Carrier> {
        if self.is_1010() {
            return None;
        }
        Some(match self.digits[3] {
            b'0' | b'6' => Carrier::Unicom,
            b'1' | b'7' => Carrier::Mobile,
            _ => Carrier::Telecom,
        })
    }
}

impl fmt::Display for Number400 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Number400 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Number400({})", self.as_str())
    }
}

impl Serialize for Number400 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::str::FromStr for Number400 {
    type Err = CalledError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        normalize_called(s)
    }
}

/// Visual separators allowed in `tel:` numbers (RFC 3966) and in how people write numbers.
fn is_separator(c: u8) -> bool {
    matches!(c, b'-' | b'.' | b'(' | b')' | b' ')
}

/// Collect the digits of `raw` into `buf` (visual separators dropped; a single leading `+` kept as
/// a flag). Returns `None` on any other character or when there are more digits than `buf` holds.
fn digits_into<'b>(raw: &str, buf: &'b mut [u8]) -> Option<(bool, &'b [u8])> {
    let bytes = raw.as_bytes();
    let (plus, rest) = match bytes.first() {
        Some(b'+') => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut n = 0;
    for &c in rest {
        if c.is_ascii_digit() {
            if n == buf.len() {
                return None;
            }
            buf[n] = c;
            n += 1;
        } else if !is_separator(c) {
            return None;
        }
    }
    Some((plus, &buf[..n]))
}

/// Parse the user part of a Request-URI (or a `tel:` number) as a 400 or 1010 number.
///
/// Accepts `4008001234`, `+864008001234`, `864008001234`, `+86-400-800-1234`,
/// `400-800-1234`, `tel:+86-400-800-1234` (a leading `tel:` is ignored), and likewise
/// `10101234`, `+8610101234`, `8610101234`, `1010-1234`. Visual separators `- . ( )` and spaces
/// are removed. Anything that is not then exactly 10 digits starting `400` with an allocated
/// carrier digit (0, 1, 6, 7, 8, 9), or 8 digits starting `1010`, is [`CalledError::NotA400`].
/// Whether the number is served is the table's business (an unconfigured one is unknown).
pub fn normalize_called(user: &str) -> Result<Number400, CalledError> {
    let user = user.strip_prefix("tel:").unwrap_or(user);
    let mut buf = [0u8; 16];
    let (plus, digits) = digits_into(user, &mut buf).ok_or(CalledError::NotA400)?;
    let national =
        if plus || digits.len() == 12 || (digits.len() == 10 && digits.starts_with(b"861010")) {
            digits.strip_prefix(b"86").ok_or(CalledError::NotA400)?
        } else {
            digits
        };
    if national.len() == 8 && national.starts_with(b"1010") {
        let mut out = [0u8; 10];
        out[..8].copy_from_slice(national);
        return Ok(Number400 {
            digits: out,
            len: 8,
        });
    }
    if national.len() != 10 || !national.starts_with(b"400") {
        return Err(CalledError::NotA400);
    }
    if !matches!(national[3], b'0' | b'1' | b'6' | b'7' | b'8' | b'9') {
        return Err(CalledError::NotA400);
    }
    let mut out = [0u8; 10];
    out.copy_from_slice(national);
    Ok(Number400 {
        digits: out,
        len: 10,
    })
}

/// What kind of number a caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A mainland mobile number, normalised to 11 digits `1[3-9]xxxxxxxxx`.
    Mobile,
    /// A mainland fixed line, normalised to `0` + area code + local number.
    FixedLine,
    /// Anything outside +86 (including Hong Kong, Macau, Taiwan), normalised to `+` + E.164 digits.
    International,
    /// Anonymous, short codes, service numbers (400/800/95xxx), or unparseable.
    Unknown,
}

impl CallerKind {
    /// Lowercase name for logs and CDRs.
    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::Mobile => "mobile",
            CallerKind::FixedLine => "fixed_line",
            CallerKind::International => "international",
            CallerKind::Unknown => "unknown",
        }
    }
}

/// Maximum length of a normalised caller (E.164 allows 15 digits, plus `+`; we keep a margin).
pub const CALLER_MAX: usize = 24;

/// A calling number in canonical form, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Caller {
    buf: [u8; CALLER_MAX],
    len: u8,
    /// What kind of number this is.
    pub kind: CallerKind,
    /// [`caller_key`] of the normalised form, computed once: the list checks ask for it
    /// several times per call.
    key: u64,
}

impl Caller {
    fn from_parts(prefix: &[u8], digits: &[u8], kind: CallerKind) -> Caller {
        let mut buf = [0u8; CALLER_MAX];
        let total = (prefix.len() + digits.len()).min(CALLER_MAX);
        let p = prefix.len().min(total);
        buf[..p].copy_from_slice(&prefix[..p]);
        let d = total - p;
        buf[p..total].copy_from_slice(&digits[..d]);
        Caller {
            buf,
            len: total as u8,
            kind,
            key: caller_key_bytes(&buf[..total]),
        }
    }

    /// An unknown caller with an empty normalised form.
    pub fn unknown() -> Caller {
        Caller {
            buf: [0u8; CALLER_MAX],
            len: 0,
            kind: CallerKind::Unknown,
            key: caller_key_bytes(b""),
        }
    }

    /// The normalised number: `13807912345`, `079188123456`, `+14155550100`, or the digits of an
    /// unknown number (possibly empty).
    pub fn normalized(&self) -> &str {
        std::str::from_utf8(self.normalized_bytes()).unwrap_or("")
    }

    /// [`Caller::normalized`] as bytes, without the UTF-8 check (ASCII by construction).
    pub fn normalized_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// The fixed-line area code including its leading `0` (`010`, `0791`), if this is a fixed line.
    pub fn area_code(&self) -> Option<&str> {
        if self.kind != CallerKind::FixedLine {
            return None;
        }
        let s = self.normalized();
        let n = area_code_len(s.as_bytes())?;
        s.get(..n)
    }

    /// The 7-digit mobile prefix (号段 + HLR code) as an integer, if this is a mobile number.
    pub fn mobile_prefix7(&self) -> Option<u32> {
        if self.kind != CallerKind::Mobile {
            return None;
        }
        self.buf[..7].iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    }

    /// A 64-bit key for rate windows and exact-number sets (FNV-1a of the normalised form with
    /// the kind mixed in).
    pub fn key(&self) -> u64 {
        self.key
    }
    /// Whether a call to this number may leave Hotline (toll-fraud rule for targets and 3xx
    /// Contacts): a mainland mobile, or a fixed line that is not a premium-rate information
    /// service (声讯台: local number starting `168`). International and unknown numbers never.
    pub fn is_allowed_target(&self) -> bool {
        match self.kind {
            CallerKind::Mobile => true,
            CallerKind::FixedLine => {
                let local = self
                    .area_code()
                    .and_then(|a| self.normalized().get(a.len()..))
                    .unwrap_or("");
                !local.starts_with("168")
            }
            _ => false,
        }
    }
}

/// FNV-1a 64 of a normalised caller string. Shared by compile-time sets and runtime lookups.
pub fn caller_key(normalized: &str) -> u64 {
    caller_key_bytes(normalized.as_bytes())
}

fn caller_key_bytes(normalized: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in normalized {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.normalized())
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Caller({:?}, {})", self.normalized(), self.kind.as_str())
    }
}

impl Serialize for Caller {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.normalized())
    }
}

/// Length of the area code (with its `0`) at the start of a national fixed-line number:
/// `01x`/`02x` are 3 digits, the rest 4.
fn area_code_len(d: &[u8]) -> Option<usize> {
    match d {
        [b'0', b'1' | b'2', _, ..] => Some(3),
        [b'0', b'3'..=b'9', _, _, ..] => Some(4),
        _ => None,
    }
}

fn is_mobile(d: &[u8]) -> bool {
    d.len() == 11 && d[0] == b'1' && (b'3'..=b'9').contains(&d[1])
}

/// A national number starting `0`: area code + 7 or 8 digit subscriber number (10-12 digits in all).
fn is_fixed(d: &[u8]) -> bool {
    match area_code_len(d) {
        Some(3) => (10..=11).contains(&d.len()) && d[3] != b'0',
        Some(4) => (11..=12).contains(&d.len()) && d[4] != b'0',
        _ => false,
    }
}

/// Normalise a calling number as it arrives in the From (or P-Asserted-Identity) user part.
///
/// Forms: `+8613807912345`, `008613807912345`, `8613807912345`, `13807912345`,
/// `013807912345` (trunk-added `0`), `079188123456`, `+8679188123456`, `01012345678`,
/// `tel:+86-10-1234-5678`. `+` / `00` followed by anything other than `86` is
/// [`CallerKind::International`]. Never fails: what cannot be classified is `Unknown`.
pub fn normalize_caller(raw: &str) -> Caller {
    let raw = raw.strip_prefix("tel:").unwrap_or(raw);
    let mut buf = [0u8; 32];
    let Some((plus, digits)) = digits_into(raw, &mut buf) else {
        return Caller::unknown();
    };
    if digits.is_empty() {
        return Caller::unknown();
    }
    // International prefix: '+' or '00'.
    let e164: Option<&[u8]> = if plus {
        Some(digits)
    } else {
        digits.strip_prefix(b"00")
    };
    let (national, had_cc) = match e164 {
        Some(rest) => match rest.strip_prefix(b"86") {
            Some(n) => (n, true),
            None => {
                if rest.len() < 4 {
                    return Caller::from_parts(b"", digits, CallerKind::Unknown);
                }
                return Caller::from_parts(b"+", rest, CallerKind::International);
            }
        },
        None => (digits, false),
    };
    if is_mobile(national) {
        return Caller::from_parts(b"", national, CallerKind::Mobile);
    }
    if !had_cc {
        // Trunk-added 0 before a mobile number.
        if let Some(m) = national.strip_prefix(b"0") {
            if is_mobile(m) {
                return Caller::from_parts(b"", m, CallerKind::Mobile);
            }
        }
        // 86 without '+'.
        if let Some(m) = national.strip_prefix(b"86") {
            if is_mobile(m) {
                return Caller::from_parts(b"", m, CallerKind::Mobile);
            }
        }
        if is_fixed(national) {
            return Caller::from_parts(b"", national, CallerKind::FixedLine);
        }
    } else {
        // After +86 a fixed line has no leading 0; tolerate one anyway.
        let mut tmp = [0u8; 32];
        let with0: &[u8] = if national.first() == Some(&b'0') {
            national
        } else {
            let n = national.len().min(31);
            tmp[0] = b'0';
            tmp[1..=n].copy_from_slice(&national[..n]);
            &tmp[..=n]
        };
        if is_fixed(with0) {
            return Caller::from_parts(b"", with0, CallerKind::FixedLine);
        }
    }
    Caller::from_parts(b"", national, CallerKind::Unknown)
}

/// Whether the user part of a target or 3xx Contact URI may be called: a PBX extension or
/// name (short, or not a phone number) on a configured host is fine; a phone number must be an
/// allowed domestic target ([`Caller::is_allowed_target`]). International numbers never are.
pub fn uri_user_allowed(user: &str) -> bool {
    let c = normalize_caller(user);
    match c.kind {
        CallerKind::International => false,
        CallerKind::Mobile | CallerKind::FixedLine => c.is_allowed_target(),
        // Extensions (`1001`) and names (`sales`) — but not a long digit string that is no
        // domestic number (e.g. an international number written without a prefix).
        CallerKind::Unknown => {
            let digits = user.bytes().filter(u8::is_ascii_digit).count();
            digits <= 6 || digits * 2 < user.len()
        }
    }
}

#[cfg(test)]
mod target_rule_tests {
    use super::*;

    #[test]
    fn uri_users_extensions_ok_international_refused() {
        for ok in ["1001", "sales", "", "13800138000", "01012345678"] {
            assert!(uri_user_allowed(ok), "{ok}");
        }
        for bad in [
            "00442079460000",
            "+442079460000",
            "0085212345678",
            "01016812345",
            "442079460000",
        ] {
            assert!(!uri_user_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn only_domestic_non_premium_numbers_are_allowed_targets() {
        for ok in [
            "13800138000",
            "+8613800138000",
            "01012345678",
            "079188123456",
        ] {
            assert!(normalize_caller(ok).is_allowed_target(), "{ok}");
        }
        for bad in [
            "00442079460000",
            "+442079460000",
            "0085212345678",
            "01016812345",
            "075516801234",
            "12345",
        ] {
            assert!(!normalize_caller(bad).is_allowed_target(), "{bad}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key kept at construction is the key of the normalised form, and its bytes are
    /// that form's.
    #[test]
    fn caller_key_kept_is_caller_key() {
        for raw in [
            "",
            "13800138000",
            "+8613800138000",
            "008613800138000",
            "01088886666",
            "079188123456",
            "+14155550100",
            "abc",
            "12345",
            "0",
            "+",
            "86",
            "4008001234",
            "1380013800012345678901",
        ] {
            let c = normalize_caller(raw);
            assert_eq!(c.key(), caller_key(c.normalized()), "{raw}");
            assert_eq!(c.normalized_bytes(), c.normalized().as_bytes(), "{raw}");
        }
        assert_eq!(Caller::unknown().key(), caller_key(""));
    }

    #[test]
    fn called_forms() {
        for s in [
            "4008001234",
            "+864008001234",
            "864008001234",
            "+86-400-800-1234",
            "400-800-1234",
            "tel:+86-400-800-1234",
            "(400) 800.1234",
        ] {
            let n = normalize_called(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(n.as_str(), "4008001234", "{s}");
            assert_eq!(n.carrier(), Some(Carrier::Telecom));
        }
        assert_eq!(
            normalize_called("4008001234").map(|n| n.as_u64()),
            Ok(4008001234)
        );
    }

    #[test]
    fn called_rejects() {
        for s in [
            "",
            "400800123",
            "40080012345",
            "8008001234",
            "+14008001234",
            "4002001234",
            "abc",
            "400800123x",
            "+",
            "++864008001234",
            "0864008001234",
        ] {
            assert_eq!(normalize_called(s), Err(CalledError::NotA400), "{s}");
        }
    }

    #[test]
    fn carriers() {
        let c = |s: &str| normalize_called(s).map(|n| n.carrier().unwrap_or(Carrier::Unicom));
        assert_eq!(c("4000000000"), Ok(Carrier::Unicom));
        assert_eq!(c("4006000000"), Ok(Carrier::Unicom));
        assert_eq!(c("4001000000"), Ok(Carrier::Mobile));
        assert_eq!(c("4007000000"), Ok(Carrier::Mobile));
        assert_eq!(c("4008000000"), Ok(Carrier::Telecom));
        assert_eq!(c("4009000000"), Ok(Carrier::Telecom));
    }

    /// Issue 18 item 12: 1010 numbers (8 digits) are called numbers too, in every usual
    /// form; they carry no carrier of their own (the configuration names it). 1010 with more
    /// or fewer digits is not one.
    #[test]
    fn numbers_1010() {
        for s in [
            "10101234",
            "+8610101234",
            "8610101234",
            "1010-1234",
            "tel:+86-1010-1234",
        ] {
            let n = normalize_called(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(n.as_str(), "10101234", "{s}");
            assert!(n.is_1010());
            assert_eq!(n.carrier(), None);
            assert_eq!(n.as_u64(), 10101234);
        }
        for s in ["1010123", "101012345", "1011234", "10201234", "+861010123"] {
            assert_eq!(normalize_called(s), Err(CalledError::NotA400), "{s}");
        }
        let a = normalize_called("4008001234").unwrap_or_else(|e| panic!("{e}"));
        assert!(!a.is_1010());
    }

    #[test]
    fn caller_forms() {
        let cases = [
            ("+8613807912345", "13807912345", CallerKind::Mobile),
            ("008613807912345", "13807912345", CallerKind::Mobile),
            ("8613807912345", "13807912345", CallerKind::Mobile),
            ("13807912345", "13807912345", CallerKind::Mobile),
            ("013807912345", "13807912345", CallerKind::Mobile),
            ("079188123456", "079188123456", CallerKind::FixedLine),
            ("+8679188123456", "079188123456", CallerKind::FixedLine),
            ("01012345678", "01012345678", CallerKind::FixedLine),
            ("+861012345678", "01012345678", CallerKind::FixedLine),
            ("tel:+86-10-1234-5678", "01012345678", CallerKind::FixedLine),
            ("+14155550100", "+14155550100", CallerKind::International),
            ("0014155550100", "+14155550100", CallerKind::International),
            ("+85221234567", "+85221234567", CallerKind::International),
            ("anonymous", "", CallerKind::Unknown),
            ("", "", CallerKind::Unknown),
            ("95588", "95588", CallerKind::Unknown),
            ("4008001234", "4008001234", CallerKind::Unknown),
        ];
        for (raw, norm, kind) in cases {
            let c = normalize_caller(raw);
            assert_eq!((c.normalized(), c.kind), (norm, kind), "{raw}");
        }
        assert_eq!(normalize_caller("079188123456").area_code(), Some("0791"));
        assert_eq!(normalize_caller("01012345678").area_code(), Some("010"));
        assert_eq!(
            normalize_caller("13807912345").mobile_prefix7(),
            Some(1380791)
        );
    }
}
