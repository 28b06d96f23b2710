//! [`IdMap`]: the proxy's maps from a `u64` id or keyed hash to its state, split into
//! [`PARTS`] hash tables so that no single insert rehashes the whole map.
//!
//! A hash table that doubles copies every entry at once. At 5,500 calls per second a proxy
//! holds a few hundred thousand finished transactions (RFC 6026 keeps them 32 s), and one
//! doubling of that table moved ~40 MiB inside one message's handling: a 10–15 ms stall of
//! the shard, which was the p99.9 of the added setup latency. Split 64 ways, each doubling
//! moves 1/64 of the map, and the total work is unchanged.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Number of tables an [`IdMap`] is split into (a power of two).
pub const PARTS: usize = 64;
const PART_BITS: u32 = PARTS.trailing_zeros();

/// Hasher for maps keyed by ids and by keyed-hash values, which are already well spread: one
/// multiply instead of SipHash on every lookup.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

type Part<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A `u64`-keyed map split into [`PARTS`] tables (see the module docs).
pub struct IdMap<V> {
    parts: Box<[Part<V>]>,
    len: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            parts: (0..PARTS).map(|_| Part::default()).collect(),
            len: 0,
        }
    }
}

/// Which table holds `k`. A different multiplier from [`IdHasher`] and its top bits, so that
/// within one table the keys still spread over all buckets (a table indexes by the low bits
/// of its own hash) and over all control bytes (its top 7 bits).
#[inline]
fn part(k: u64) -> usize {
    // Lossless: the shifted value has PART_BITS bits.
    ((k ^ (k >> 31)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - PART_BITS)) as usize
}

impl<V> IdMap<V> {
    pub fn get(&self, k: &u64) -> Option<&V> {
        self.parts[part(*k)].get(k)
    }

    pub fn get_mut(&mut self, k: &u64) -> Option<&mut V> {
        self.parts[part(*k)].get_mut(k)
    }

    pub fn contains_key(&self, k: &u64) -> bool {
        self.parts[part(*k)].contains_key(k)
    }

    pub fn insert(&mut self, k: u64, v: V) -> Option<V> {
        let old = self.parts[part(k)].insert(k, v);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, k: &u64) -> Option<V> {
        let old = self.parts[part(*k)].remove(k);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.parts.iter().flat_map(|p| p.iter())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.parts.iter().flat_map(|p| p.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map() {
        let mut m = IdMap::default();
        assert!(m.is_empty());
        for k in 0..10_000u64 {
            assert_eq!(m.insert(k * 7, k), None);
        }
        assert_eq!(m.insert(7, 99), Some(1), "replacing keeps the length");
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&7), Some(&99));
        *m.get_mut(&14).expect("present") = 5;
        assert_eq!(m.get(&14), Some(&5));
        assert!(m.contains_key(&(9_999 * 7)));
        assert!(!m.contains_key(&8));
        assert_eq!(m.remove(&8), None);
        assert_eq!(m.remove(&7), Some(99));
        assert_eq!(m.len(), 9_999);
        assert_eq!(m.iter().count(), 9_999);
        assert_eq!(m.values().filter(|v| **v == 5).count(), 2, "keys 14 and 35");
    }

    #[test]
    fn sequential_and_hashed_keys_spread_over_every_part() {
        for keys in [
            (0..64_000u64).collect::<Vec<_>>(),
            (0..64_000u64)
                .map(|i| i.wrapping_mul(0x51_7c_c1_b7_27_22_0a_95))
                .collect(),
        ] {
            let mut count = [0usize; PARTS];
            for k in keys {
                count[part(k)] += 1;
            }
            // 1,000 expected per part; a bad split puts everything in a few.
            assert!(count.iter().all(|&c| (700..1300).contains(&c)), "{count:?}");
        }
    }
}
