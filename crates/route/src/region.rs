//! Caller region (province, city) from mobile 号段 and fixed-line area codes.
//!
//! The tables in `data/` (see `data/README.md` for source and licence) are embedded with
//! `include_str!` and parsed once, on first use, into sorted arrays: mobile 7-digit prefixes as
//! inclusive `u32` ranges, area codes as `u16` keys. Lookups are binary searches and never
//! allocate. Region names borrow from the embedded text, hence `&'static str`.

use std::sync::OnceLock;

use serde::Serialize;

use crate::number::{Caller, CallerKind};

const MOBILE_CSV: &str = include_str!("../../../data/cn_mobile_ranges.csv");
const AREA_CSV: &str = include_str!("../../../data/cn_area_codes.csv");

/// A province and a city, e.g. 江西 南昌. Province-level cities have `city == province` (北京).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Region {
    /// Province, autonomous region or municipality (江西, 广东, 北京, 内蒙古).
    pub province: &'static str,
    /// City (prefecture) name (南昌, 深圳, 北京).
    pub city: &'static str,
}

impl std::fmt::Display for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.province == self.city {
            f.write_str(self.province)
        } else {
            write!(f, "{} {}", self.province, self.city)
        }
    }
}

/// The parsed region tables.
#[derive(Debug)]
pub struct RegionDb {
    /// Distinct regions; ranges and area codes index into this.
    regions: Vec<Region>,
    /// (start, end inclusive, region index), sorted by start, non-overlapping.
    mobile: Vec<(u32, u32, u16)>,
    /// Direct index for prefixes 1300000..=1999999: region index + 1, 0 = none. One memory
    /// access per lookup instead of a 17-step binary search over 1.6 MB (≈ 1.4 MB).
    direct: Vec<u16>,
    /// (area code without the leading 0 as an integer, region index), sorted.
    /// `010` -> 10, `0791` -> 791: 3-digit codes start 1/2, 4-digit ones 3-9, so keys are unique.
    area: Vec<(u16, u16)>,
}

static EMBEDDED: OnceLock<RegionDb> = OnceLock::new();

const DIRECT_START: u32 = 1_300_000;
const DIRECT_END: u32 = 1_999_999;

impl RegionDb {
    /// The embedded tables, parsed on first call (about 137k mobile ranges; see
    /// docs/routing.md for the measured load time).
    pub fn embedded() -> &'static RegionDb {
        EMBEDDED.get_or_init(|| RegionDb::parse(MOBILE_CSV, AREA_CSV))
    }

    /// Parse the two CSV tables. Malformed rows are skipped (the embedded data is checked by tests).
    pub fn parse(mobile_csv: &'static str, area_csv: &'static str) -> RegionDb {
        let mut regions: Vec<Region> = Vec::new();
        let mut index: std::collections::HashMap<(&'static str, &'static str), u16> =
            std::collections::HashMap::new();
        let mut intern = |province: &'static str, city: &'static str| -> Option<u16> {
            if let Some(&i) = index.get(&(province, city)) {
                return Some(i);
            }
            let i = u16::try_from(regions.len()).ok()?;
            regions.push(Region { province, city });
            index.insert((province, city), i);
            Some(i)
        };
        let mut mobile: Vec<(u32, u32, u16)> = Vec::with_capacity(140_000);
        for line in data_lines(mobile_csv) {
            let mut f = line.split(',');
            let (Some(s), Some(e), Some(p), Some(c)) = (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let (Ok(s), Ok(e)) = (s.parse::<u32>(), e.parse::<u32>()) else {
                continue;
            };
            let Some(r) = intern(p, c) else { continue };
            match mobile.last_mut() {
                // Merge neighbours with the same region (carrier is not kept).
                Some(last) if last.2 == r && last.1 + 1 == s => last.1 = e,
                _ => mobile.push((s, e, r)),
            }
        }
        mobile.sort_unstable_by_key(|r| r.0);
        let mut area: Vec<(u16, u16)> = Vec::new();
        for line in data_lines(area_csv) {
            let mut f = line.split(',');
            let (Some(code), Some(p), Some(c)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if !(3..=4).contains(&code.len()) || !code.starts_with('0') {
                continue;
            }
            let Ok(k) = code[1..].parse::<u16>() else {
                continue;
            };
            let Some(r) = intern(p, c) else { continue };
            area.push((k, r));
        }
        area.sort_unstable();
        area.dedup_by_key(|a| a.0);
        let mut direct = vec![0u16; (DIRECT_END - DIRECT_START + 1) as usize];
        for &(s, e, r) in &mobile {
            let lo = s.max(DIRECT_START);
            let hi = e.min(DIRECT_END);
            if lo <= hi {
                let v = r.saturating_add(1);
                for slot in &mut direct[(lo - DIRECT_START) as usize..=(hi - DIRECT_START) as usize]
                {
                    *slot = v;
                }
            }
        }
        RegionDb {
            regions,
            mobile,
            direct,
            area,
        }
    }

    /// Number of merged mobile ranges.
    pub fn mobile_ranges(&self) -> usize {
        self.mobile.len()
    }

    /// Approximate heap bytes held by the tables.
    pub fn heap_bytes(&self) -> usize {
        self.regions.capacity() * std::mem::size_of::<Region>()
            + self.mobile.capacity() * std::mem::size_of::<(u32, u32, u16)>()
            + self.area.capacity() * std::mem::size_of::<(u16, u16)>()
            + self.direct.capacity() * 2
    }

    /// Region of a 7-digit mobile prefix (e.g. 1380791).
    pub fn mobile(&self, prefix7: u32) -> Option<Region> {
        if (DIRECT_START..=DIRECT_END).contains(&prefix7) {
            let v = *self.direct.get((prefix7 - DIRECT_START) as usize)?;
            return usize::from(v)
                .checked_sub(1)
                .and_then(|i| self.regions.get(i).copied());
        }
        self.mobile_search(prefix7)
    }

    fn mobile_search(&self, prefix7: u32) -> Option<Region> {
        let i = self.mobile.partition_point(|r| r.0 <= prefix7);
        let r = self.mobile.get(i.checked_sub(1)?)?;
        (prefix7 <= r.1).then(|| self.regions.get(usize::from(r.2)).copied())?
    }

    /// Region of an area code given with its leading 0 (`010`, `0791`).
    pub fn area_code(&self, code: &str) -> Option<Region> {
        let k: u16 = code.strip_prefix('0')?.parse().ok()?;
        let i = self.area.binary_search_by_key(&k, |a| a.0).ok()?;
        self.regions.get(usize::from(self.area[i].1)).copied()
    }

    /// Region of a normalised caller: mobile by 号段, fixed line by area code, otherwise none.
    pub fn lookup(&self, caller: &Caller) -> Option<Region> {
        match caller.kind {
            CallerKind::Mobile => self.mobile(caller.mobile_prefix7()?),
            CallerKind::FixedLine => self.area_code(caller.area_code()?),
            _ => None,
        }
    }

    /// Whether any region has this province or city name (for validating config).
    pub fn knows(&self, province_or_city: &str) -> bool {
        self.regions
            .iter()
            .any(|r| r.province == province_or_city || r.city == province_or_city)
    }

    /// Whether a province/city pair exists.
    pub fn knows_pair(&self, province: &str, city: &str) -> bool {
        self.regions
            .iter()
            .any(|r| r.province == province && r.city == city)
    }
}

fn data_lines(csv: &'static str) -> impl Iterator<Item = &'static str> {
    csv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .skip(1) // header row
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::normalize_caller;

    fn region(raw: &str) -> Option<(&'static str, &'static str)> {
        RegionDb::embedded()
            .lookup(&normalize_caller(raw))
            .map(|r| (r.province, r.city))
    }

    #[test]
    fn documented_checks() {
        let nc = Some(("江西", "南昌"));
        assert_eq!(region("13807912345"), nc);
        assert_eq!(region("+8613807912345"), nc);
        assert_eq!(region("008613807912345"), nc);
        assert_eq!(region("013807912345"), nc);
        assert_eq!(region("8613807912345"), nc);
        assert_eq!(region("19907912345"), nc);
        assert_eq!(region("079188123456"), nc);
        assert_eq!(region("+8679188123456"), nc);
        assert_eq!(region("01012345678"), Some(("北京", "北京")));
        assert_eq!(region("+861012345678"), Some(("北京", "北京")));
        assert_eq!(region("02112345678"), Some(("上海", "上海")));
        assert_eq!(region("075512345678"), Some(("广东", "深圳")));
        assert_eq!(region("+14155550100"), None);
        assert_eq!(region("95588"), None);
        assert_eq!(region(""), None);
    }

    #[test]
    fn table_sane() {
        let db = RegionDb::embedded();
        assert!(db.mobile_ranges() > 100_000, "{}", db.mobile_ranges());
        assert!(db.mobile.windows(2).all(|w| w[0].1 < w[1].0));
        assert!(db.knows("江西") && db.knows("南昌") && !db.knows("火星"));
        assert!(db.knows_pair("广东", "深圳"));
        assert_eq!(db.mobile(1000000), None);
        assert_eq!(db.mobile(9999999), None);
        assert_eq!(db.area_code("0999x"), None);
        // The direct index agrees with the binary search everywhere.
        for p in (DIRECT_START..=DIRECT_END).step_by(7) {
            assert_eq!(db.mobile(p), db.mobile_search(p), "{p}");
        }
    }
}

#[cfg(test)]
mod timing {
    /// Prints the parse time of the embedded tables (run with `--nocapture`, ideally `--release`).
    #[test]
    fn load_time_is_reasonable() {
        let t = std::time::Instant::now();
        let db = super::RegionDb::parse(super::MOBILE_CSV, super::AREA_CSV);
        let el = t.elapsed();
        println!(
            "region tables: {} mobile ranges, {} KiB heap, parsed in {:?}",
            db.mobile_ranges(),
            db.heap_bytes() / 1024,
            el
        );
        assert!(el < std::time::Duration::from_secs(5), "{el:?}");
    }
}
