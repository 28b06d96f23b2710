//! The proxy's keyed hash: transaction keys, the loop hash in our branch parameters, the
//! Call-ID index of dialogs, the To-tags of local responses.
//!
//! SipHash-1-3 (the algorithm of std's `DefaultHasher`) under a [`HashKey`] that comes in with
//! [`super::ProxyConfig`]: the server draws a random one at start, so no peer can aim for a
//! collision; a test sets a fixed one, and the bytes the proxy sends are then a function of
//! its inputs alone.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The 128-bit secret of the proxy's keyed hashes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashKey {
    k0: u64,
    k1: u64,
}

impl HashKey {
    /// A fixed key (tests, reproducible fuzz runs).
    pub const fn new(k0: u64, k1: u64) -> HashKey {
        HashKey { k0, k1 }
    }

    /// A random key from the operating system's entropy (through std's `RandomState`): what a
    /// server facing the network uses.
    pub fn random() -> HashKey {
        let word = || std::collections::hash_map::RandomState::new().hash_one(0x686c_u64);
        HashKey::new(word(), word())
    }

    /// Keyed hash of a sequence of byte strings (each hashed with its length, so the split
    /// between parts counts).
    #[inline]
    pub(crate) fn hash(&self, parts: &[&[u8]]) -> u64 {
        let mut h = Sip::<1, 3>::new(self.k0, self.k1);
        for p in parts {
            // What `<[u8] as Hash>::hash` feeds: the length as a native-endian usize, then
            // the bytes (the same hash, without the Hasher's generic byte-slice path for the
            // length).
            h.write_word(u64::from_le_bytes((p.len() as u64).to_ne_bytes()));
            h.write(p);
        }
        h.finish()
    }
}

impl fmt::Debug for HashKey {
    /// The key is a secret: not written into logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// SipHash-C-D (Aumasson, Bernstein), streaming.
#[derive(Clone, Copy)]
struct Sip<const C: usize, const D: usize> {
    v: [u64; 4],
    /// Bytes not yet compressed (little-endian, `ntail` of them).
    tail: u64,
    ntail: usize,
    length: usize,
}

impl<const C: usize, const D: usize> Sip<C, D> {
    fn new(k0: u64, k1: u64) -> Self {
        Sip {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            length: 0,
        }
    }

    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline]
    fn compress(&mut self, m: u64) {
        self.v[3] ^= m;
        for _ in 0..C {
            Self::round(&mut self.v);
        }
        self.v[0] ^= m;
    }
}

impl<const C: usize, const D: usize> Sip<C, D> {
    /// Eight bytes, as `write` of their little-endian form.
    #[inline]
    fn write_word(&mut self, w: u64) {
        self.length = self.length.wrapping_add(8);
        if self.ntail == 0 {
            self.compress(w);
            return;
        }
        let shift = 8 * self.ntail as u32;
        let m = self.tail | (w << shift);
        self.compress(m);
        self.tail = w >> (64 - shift);
    }
}

impl<const C: usize, const D: usize> Hasher for Sip<C, D> {
    #[inline]
    fn write(&mut self, msg: &[u8]) {
        self.length = self.length.wrapping_add(msg.len());
        let mut msg = msg;
        if self.ntail != 0 {
            let take = (8 - self.ntail).min(msg.len());
            self.tail |= le_word(&msg[..take]) << (8 * self.ntail);
            self.ntail += take;
            msg = &msg[take..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.compress(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut words = msg.chunks_exact(8);
        for w in &mut words {
            self.compress(le_word(w));
        }
        let rest = words.remainder();
        self.tail = le_word(rest);
        self.ntail = rest.len();
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut s = *self;
        let b = ((s.length as u64 & 0xff) << 56) | s.tail;
        s.compress(b);
        s.v[2] ^= 0xff;
        for _ in 0..D {
            Self::round(&mut s.v);
        }
        s.v[0] ^ s.v[1] ^ s.v[2] ^ s.v[3]
    }
}

/// Up to eight bytes as a little-endian word (missing high bytes zero): loads of 4, 2 and 1
/// bytes instead of a `memcpy` call of a variable length.
#[inline]
fn le_word(b: &[u8]) -> u64 {
    if let Some(w) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*w);
    }
    let mut w = 0u64;
    let mut i = 0;
    if let Some(x) = b.first_chunk::<4>() {
        w = u64::from(u32::from_le_bytes(*x));
        i = 4;
    }
    if let Some(x) = b[i..].first_chunk::<2>() {
        w |= u64::from(u16::from_le_bytes(*x)) << (8 * i);
        i += 2;
    }
    if let Some(&x) = b.get(i) {
        w |= u64::from(x) << (8 * i);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn sip<const C: usize, const D: usize>(k0: u64, k1: u64, chunks: &[&[u8]]) -> u64 {
        let mut h = Sip::<C, D>::new(k0, k1);
        for c in chunks {
            h.write(c);
        }
        h.finish()
    }

    /// The reference vectors of SipHash-2-4 (key 00..0f, message 00..len-1): the rounds, the
    /// padding and the key schedule are those of the paper; 1-3 differs only in the counts.
    #[test]
    fn siphash_2_4_reference_vectors() {
        let (k0, k1) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        let msg: Vec<u8> = (0..64u8).collect();
        let expect: [(usize, u64); 8] = [
            (0, 0x726f_db47_dd0e_0e31),
            (1, 0x74f8_39c5_93dc_67fd),
            (2, 0x0d6c_8009_d9a9_4f5a),
            (7, 0xab02_00f5_8b01_d137),
            (8, 0x93f5_f579_9a93_2462),
            (15, 0xa129_ca61_49be_45e5),
            (16, 0x3f2a_cc7f_57c2_9bdb),
            (63, 0x958a_324c_eb06_4572),
        ];
        for (len, want) in expect {
            assert_eq!(sip::<2, 4>(k0, k1, &[&msg[..len]]), want, "length {len}");
        }
    }

    /// `HashKey::hash` feeds the lengths as words itself: the same hash as hashing each
    /// part through `Hash`, for every alignment of the parts.
    #[test]
    fn hash_is_that_of_the_hash_trait() {
        let key = HashKey::new(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let msg: Vec<u8> = (0..30u8).map(|i| i.wrapping_mul(91)).collect();
        for a in 0..msg.len() {
            for b in a..msg.len() {
                let parts: [&[u8]; 3] = [&msg[..a], &msg[a..b], &msg[b..]];
                let mut h = Sip::<1, 3>::new(key.k0, key.k1);
                for p in parts {
                    p.hash(&mut h);
                }
                assert_eq!(key.hash(&parts), h.finish(), "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn le_word_reads_every_length_as_a_copy_does() {
        let bytes = [0x11u8, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99];
        for n in 0..=bytes.len() {
            let mut w = [0u8; 8];
            let k = n.min(8);
            w[..k].copy_from_slice(&bytes[..k]);
            assert_eq!(le_word(&bytes[..n]), u64::from_le_bytes(w), "length {n}");
        }
    }

    #[test]
    fn streaming_splits_do_not_change_the_hash() {
        let msg: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        let whole = sip::<1, 3>(3, 4, &[&msg]);
        for a in 0..msg.len() {
            for b in a..msg.len() {
                let parts = [&msg[..a], &msg[a..b], &msg[b..]];
                assert_eq!(sip::<1, 3>(3, 4, &parts), whole, "split at {a}, {b}");
            }
        }
        assert_ne!(sip::<2, 4>(3, 4, &[&msg]), whole);
    }

    #[test]
    fn the_key_decides_the_hash() {
        let parts: [&[u8]; 2] = [b"z9hG4bK-1", b"10.0.0.1"];
        let a = HashKey::new(1, 2);
        assert_eq!(a.hash(&parts), HashKey::new(1, 2).hash(&parts));
        assert_ne!(a.hash(&parts), HashKey::new(1, 3).hash(&parts));
        assert_ne!(a.hash(&parts), HashKey::new(2, 2).hash(&parts));
        // Parts are length-prefixed: moving the boundary changes the input.
        assert_ne!(a.hash(&parts), a.hash(&[b"z9hG4bK-11", b"0.0.0.1"]));
        assert_ne!(HashKey::random(), HashKey::random());
        assert_eq!(format!("{a:?}"), "HashKey(..)");
    }
}
