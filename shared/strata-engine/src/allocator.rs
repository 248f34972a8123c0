//! The allocator Strata's long-running processes use: mimalloc, returning
//! freed memory to the system at once.
//!
//! Flushes, merges and scans allocate and free buffers of megabytes from
//! many tokio worker threads. glibc's malloc keeps such memory in
//! per-thread arenas, so a process's RSS stayed well above what it held:
//! the levels bench (2 GB from one partition splitting at 128 MB, 18
//! partitions at the end, 256 MB cache) peaked at 1,058 MB on glibc and
//! 852 MB on mimalloc with immediate purging, and loaded faster. Declare it
//! in a binary with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: strata_engine::allocator::Allocator = strata_engine::allocator::Allocator;
//! ```
//!
//! and call [`tune`] first thing in `main`.

/// The global allocator for Strata's binaries.
pub use mimalloc::MiMalloc as Allocator;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e` enum, v3): how
/// many milliseconds freed memory waits before it goes back to the system.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the system at once rather than after mimalloc's
/// default delay (10 ms, ten times that for its arenas), which let a busy
/// process's RSS run 500 MB above what it held in the same bench.
pub fn tune() {
    // SAFETY: sets an integer option; mimalloc reads options atomically and
    // allows them to be set at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn purge_delay_is_the_option_set() {
        super::tune();
        // SAFETY: reads an integer option.
        let v = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(v, 0);
        // The numbering is mimalloc's: the option after it is use_numa_nodes.
        assert_eq!(
            super::MI_OPTION_PURGE_DELAY + 1,
            libmimalloc_sys::mi_option_use_numa_nodes
        );
    }
}
