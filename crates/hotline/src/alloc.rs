//! The process allocator: mimalloc, and the two settings that keep it from stalling a shard.
//!
//! mimalloc has per-thread free lists, no global heap lock and no first-fit bin search. With
//! glibc's malloc a switch holding ~200,000 retained transactions at 2,000 CPS spent ~15 % of
//! its CPU in malloc/free (docs/PERFORMANCE.md, "What changed").
//!
//! 1. **No transparent huge pages** (the crate's `no_thp` feature). mimalloc 3 otherwise
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
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
