//! The process allocator: mimalloc, and the two settings that keep it from stalling a shard.
//!
//! mimalloc has per-thread free lists, no global heap lock and no first-fit bin search. With
//! glibc's malloc a switch holding ~200,000 retained transactions at 2,000 CPS spent ~15 % of
//! its CPU in malloc/free (docs/PERFORMANCE.md, "What changed").
//!
//! 1. **No transparent huge pages** (libmimalloc-sys's `no_thp` feature). mimalloc 3 otherwise
//!    `madvise`s its arenas for THP, and the first touch of each 2 MiB page (zeroing it, in
//!    a VM also backing it) stalled a shard for ~5 ms while the heap grew: p99 setup latency
//!    56–82 ms at 5,500 CPS, 1.25 ms without.
//! 2. **No purging** ([`tune`]). By default mimalloc returns pages that stay free for 1 s to
//!    the OS (`MADV_DONTNEED`) and faults them in again when the heap needs them. A switch's
//!    heap is a 32 s window of retained transactions that turns over continuously, so at
//!    10,000 CPS the shard took 450–900 page faults per 256 datagrams (~12 µs each in this
//!    VM): 8–25 ms loop turns, long enough to trip the overload check and shed 0.2–0.6 % of
//!    calls. Without purging, 0 of 600,000 calls failed. RSS then stays at its high-water
//!    mark (+9 % at 10,000 CPS), which is what a switch sized for its peak wants.
//!    `MIMALLOC_PURGE_DELAY=<ms>` in the environment still overrides this.

#[global_allocator]
static ALLOC: Mi = Mi;

/// mimalloc, entered by its plain `mi_malloc` / `mi_realloc` whenever their natural alignment
/// is enough. The `mimalloc` crate's `MiMalloc` passes every request through
/// `mi_malloc_aligned`, whose extra checks and size-class lookup cost ~30 instructions of the
/// ~60 per allocation (docs/PERFORMANCE.md, issue 17, fourth round).
///
/// mimalloc aligns every block of 16 bytes or more to 16 (`MI_MAX_ALIGN_SIZE`; alloc.c
/// asserts it) and a smaller one to its 8-byte size class. So `align <= 16 && align <= size`
/// is the condition under which the plain entry is exact, the same one std's `System`
/// allocator uses for `malloc`. Any other layout takes the aligned entry, as before.
struct Mi;

const MI_MAX_ALIGN_SIZE: usize = 16;

#[inline]
fn natural(align: usize, size: usize) -> bool {
    align <= MI_MAX_ALIGN_SIZE && align <= size
}

// SAFETY: each method forwards to the mimalloc function documented for the same contract
// (`mi_malloc`/`mi_zalloc`/`mi_realloc` when `natural` holds, else their `_aligned` forms with
// the layout's alignment); `mi_free` takes any block from either.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Mi {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_malloc, mi_malloc_aligned};
        // SAFETY: see the impl.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        use libmimalloc_sys::{mi_zalloc, mi_zalloc_aligned};
        // SAFETY: see the impl.
        unsafe {
            if natural(layout.align(), layout.size()) {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        // SAFETY: see the impl.
        unsafe { libmimalloc_sys::mi_free(ptr.cast()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        use libmimalloc_sys::{mi_realloc, mi_realloc_aligned};
        // SAFETY: see the impl.
        unsafe {
            if natural(layout.align(), new_size) {
                mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (libmimalloc-sys 0.1 names only
/// mimalloc 2's options). The test below checks the index against its documented default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Apply the settings above. Call first thing in `main`, before any thread exists.
#[allow(unsafe_code)]
pub fn tune() {
    // SAFETY: `mi_option_set_default` writes one entry of mimalloc's static option table and
    // takes any option index and value (it range-checks the index). It changes nothing if the
    // option was set from the environment. Called before other threads are spawned.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn purge_delay() -> std::os::raw::c_long {
        // SAFETY: reads one entry of mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
    }

    #[allow(unsafe_code)]
    fn version() -> std::os::raw::c_int {
        // SAFETY: returns a constant.
        unsafe { libmimalloc_sys::mi_version() }
    }

    /// Every layout gets a block aligned as asked, whichever entry serves it; realloc keeps
    /// the contents across the plain and aligned entries.
    #[test]
    #[allow(unsafe_code)]
    fn blocks_are_aligned_and_realloc_keeps_contents() {
        use std::alloc::{GlobalAlloc, Layout};
        let sizes = [
            1usize, 2, 3, 7, 8, 9, 12, 15, 16, 17, 24, 31, 40, 48, 100, 1000, 1025, 5000, 70_000,
        ];
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for &size in &sizes {
                let l = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero-size layout; each block is written within its size, then
                // freed (or reallocated) once with the layout it was made with.
                unsafe {
                    for zeroed in [false, true] {
                        let p = if zeroed {
                            ALLOC.alloc_zeroed(l)
                        } else {
                            ALLOC.alloc(l)
                        };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "size {size} align {align}");
                        if zeroed {
                            assert!((0..size).all(|i| *p.add(i) == 0));
                        }
                        for i in 0..size {
                            *p.add(i) = i as u8;
                        }
                        let grown = size * 3 + 1;
                        let q = ALLOC.realloc(p, l, grown);
                        assert!(!q.is_null());
                        assert_eq!(
                            q as usize % align,
                            0,
                            "realloc {size} -> {grown} align {align}"
                        );
                        assert!((0..size).all(|i| *q.add(i) == i as u8));
                        let shrunk = size.div_ceil(2);
                        let g = Layout::from_size_align(grown, align).expect("layout");
                        let r = ALLOC.realloc(q, g, shrunk);
                        assert_eq!(r as usize % align, 0, "shrink {grown} -> {shrunk}");
                        assert!((0..shrunk).all(|i| *r.add(i) == i as u8));
                        ALLOC.dealloc(r, Layout::from_size_align(shrunk, align).expect("layout"));
                    }
                }
            }
        }
    }

    #[test]
    fn the_index_is_purge_delay_and_tune_turns_purging_off() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment decides; nothing of ours to check
        }
        assert!(version() >= 300, "the option index is mimalloc 3's");
        assert_eq!(
            purge_delay(),
            1000,
            "mimalloc 3's purge_delay defaults to 1000 ms"
        );
        tune();
        assert_eq!(purge_delay(), -1);
    }
}
