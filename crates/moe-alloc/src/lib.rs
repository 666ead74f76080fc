//! The global allocator of the `moe` binary, the benches and the training
//! tests: mimalloc, told never to hand freed memory back to the OS.
//!
//! glibc's malloc maps every buffer over 32 MB afresh and unmaps it on
//! free, so each `[256, 50257]` f32 tensor of a tiny training step (51 MB)
//! was page-faulted in again on every step. mimalloc reuses its memory, but
//! with its default purge delay it still decommits large freed blocks after
//! a second and the kernel zeroes every 2 MiB page again when they are
//! reused (`clear_page_erms` was 15% of a width-512 step's samples). With
//! purging off, the resident set stays at the run's peak instead.
//!
//! `moe data` wants the opposite (DATA-16): it streams documents through
//! batches allocated on the reading thread and freed on the workers, whose
//! freed pages, with purging off, stayed resident (peak RSS 65 against
//! 44 MiB on a 90 MB corpus, BENCHMARKS.md); [`purge_freed_memory_after`] turns purging
//! back on for it, and [`no_transparent_huge_pages`] keeps its heap in 4 KiB
//! pages (44 → 32 MiB on the same corpus, at the same speed).
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: moe_alloc::Allocator = moe_alloc::Allocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as sys;
use mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (`libmimalloc-sys` names no
/// constant for it): milliseconds before freed memory is purged, -1 = never.
const PURGE_DELAY: sys::mi_option_t = 15;
/// mimalloc v3's `mi_option_allow_thp`: 1 = the heap may use transparent huge pages.
const ALLOW_THP: sys::mi_option_t = 43;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Turns mimalloc's purging off; [`Allocator`] calls it before its first
/// allocation, so a binary need not. Idempotent.
pub fn configure() {
    if !CONFIGURED.swap(true, Ordering::Relaxed) {
        // SAFETY: stores an option value; mimalloc reads it when it next
        // decides whether to purge. It allocates nothing.
        unsafe { sys::mi_option_set(PURGE_DELAY, -1) };
    }
}

/// Turns purging back on, with freed memory handed back to the OS after
/// `delay_ms` milliseconds (0: at once), for work whose peak resident set
/// matters more than page faults: `moe data` streams documents through
/// batches that are allocated on one thread and freed on another, and with
/// purging off the freed batches stayed resident (DATA-16).
pub fn purge_freed_memory_after(delay_ms: u32) {
    configure();
    // SAFETY: stores an option value, as in `configure`.
    unsafe { sys::mi_option_set(PURGE_DELAY, delay_ms.into()) };
}

/// Keeps the process off transparent huge pages from here on, for the same
/// kind of work: mimalloc asks the kernel for huge pages for its arena, and
/// a 2 MiB page is resident as a whole once one byte of it is touched (on
/// a 90 MB prepare, peak RSS 44.7 against 32.1 MiB, DATA-16). mimalloc's own
/// option is read when the arena is made, before `main`, so the process
/// flag (`prctl(PR_SET_THP_DISABLE)`, Linux) is what takes effect; pages
/// already huge stay. Returns whether the kernel took the flag.
pub fn no_transparent_huge_pages() -> bool {
    configure();
    // SAFETY: stores an option value, as in `configure`.
    unsafe { sys::mi_option_set(ALLOW_THP, 0) };
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointer.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// mimalloc with purging off (see the crate docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

// SAFETY: every call is forwarded unchanged to `MiMalloc`.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !CONFIGURED.load(Ordering::Relaxed) {
            configure();
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !CONFIGURED.load(Ordering::Relaxed) {
            configure();
        }
        // SAFETY: the caller's contract is passed on.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is passed on.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_allocation_turns_purging_off() {
        // SAFETY: reading an option has no preconditions.
        let before = unsafe { sys::mi_option_get(PURGE_DELAY) };
        // mimalloc v3's documented default for purge_delay: pins the index.
        assert_eq!(before, 1000, "option 15 is not purge_delay");
        let layout = Layout::from_size_align(64 << 20, 64).unwrap();
        // SAFETY: non-zero size; freed with the same layout.
        unsafe {
            let p = Allocator.alloc(layout);
            assert!(!p.is_null());
            p.write_bytes(1, layout.size());
            Allocator.dealloc(p, layout);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { sys::mi_option_get(PURGE_DELAY) }, -1);
        // Checks: DATA-16 (in this test: the option is global to the process).
        purge_freed_memory_after(0);
        // SAFETY: as above.
        assert_eq!(unsafe { sys::mi_option_get(PURGE_DELAY) }, 0);
        // SAFETY: non-zero size; freed with the same layout.
        unsafe {
            let p = Allocator.alloc(layout);
            p.write_bytes(2, layout.size());
            Allocator.dealloc(p, layout);
        }
        // SAFETY: as above.
        assert_eq!(unsafe { sys::mi_option_get(PURGE_DELAY) }, 0);

        // Checks: DATA-16's huge pages. mimalloc v3's default for
        // allow_thp (1) pins the index; the process flag is the kernel's.
        // SAFETY: as above.
        assert_eq!(
            unsafe { sys::mi_option_get(ALLOW_THP) },
            1,
            "option 43 is not allow_thp"
        );
        let taken = no_transparent_huge_pages();
        // SAFETY: as above.
        assert_eq!(unsafe { sys::mi_option_get(ALLOW_THP) }, 0);
        #[cfg(target_os = "linux")]
        {
            // SAFETY: PR_GET_THP_DISABLE takes no pointer.
            let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
            // Linux ≥ 3.15 takes the flag; a kernel (or sandbox) without
            // the call refuses both, and then there is nothing to set.
            assert_eq!(flag, if taken { 1 } else { -1 }, "taken: {taken}");
        }
        #[cfg(not(target_os = "linux"))]
        assert!(!taken);
    }
}
