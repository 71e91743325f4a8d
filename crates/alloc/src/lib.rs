//! The allocator settings Portcullis needs that no crate wraps safely:
//! the global allocator [`Mimalloc`], [`purge`] (mimalloc) and
//! [`limit_c_arenas`] (glibc malloc).
//!
//! [`Mimalloc`] is the `mimalloc` crate's global allocator less one
//! detour. That crate asks for every block with `mi_malloc_aligned(size,
//! align)`. In mimalloc v3 that call takes the allocator's fast path only
//! while the size class' current page has a free block at hand. Otherwise
//! it takes an aligned slow path that serves only power-of-two block sizes
//! as they are and *over-allocates* every other one: 48 bytes aligned to 8
//! become a 55-byte request, a block of the 64-byte class. And since
//! nothing then ever fills the 48-byte class' page, its fast path never
//! finds a free block: *every* allocation whose size is exactly one of the
//! classes that are not powers of two (48, 80, 96, 112, 160, 192, …) takes
//! the slow path and a block one class up (`tests/alloc.rs`
//! `small_blocks_are_not_over_allocated` shows it). On the proxy's request path that was
//! ~4,500 of ~70,000 instructions a request (callgrind:
//! `mi_theap_malloc_zero_aligned_at_generic` 18 calls a request,
//! `…_overalloc` 14). Every mimalloc block is aligned to 8 bytes (block
//! sizes are multiples of the word size, from a page start aligned to 16),
//! so a layout that asks for no more is served by plain `mi_malloc`, as
//! Rust's own `System` allocator serves such layouts with `malloc`;
//! larger alignments keep `mi_malloc_aligned`.
//!
//! [`purge`] hands memory freed anywhere in the process back to the OS,
//! for a process that has gone quiet.
//!
//! mimalloc (v3) returns ("purges") freed pages to the OS only after a
//! delay, and only when some thread next calls into the allocator's slow
//! path. A proxy that served a burst of 10,000 connections and then went
//! idle makes no such calls, so it kept the burst's memory for good
//! (measured: 278 MB 30 s after the load instead of ~80). [`purge`], called
//! every few seconds from a background task, is that call.
//!
//! [`limit_c_arenas`] is about the memory Rust does not allocate: C code
//! (SQLite above all) uses glibc's `malloc`, which gives every thread that
//! meets contention an arena of its own, up to eight per core, and keeps
//! what is freed in the arena it came from. Each pooled SQLite connection
//! runs on a thread of its own (sqlx), so SQLite's one 16 MiB budget was
//! spread over 8 arenas holding ~28 MB; in one arena the same process with
//! 100,000 cached sessions held 17–23 MB less (`benches/results/
//! memory-2026-12-07.md`). SQLite serialises its allocations on a mutex of
//! its own anyway (memory statistics are on), so more arenas bought it no
//! concurrency.
//!
//! This is a crate of its own because Portcullis forbids `unsafe` code and
//! these calls are only reachable through FFI: the exceptions are here,
//! each with its justification.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has, whatever its size.
const BLOCK_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator (see the crate documentation):
/// `#[global_allocator] static GLOBAL: portcullis_alloc::Mimalloc =
/// portcullis_alloc::Mimalloc;`
pub struct Mimalloc;

impl Mimalloc {
    /// Whether plain `mi_malloc` meets `layout`'s alignment (as `System`
    /// decides for `malloc`: the alignment is guaranteed and no larger
    /// than the size).
    #[inline]
    fn plain(align: usize, size: usize) -> bool {
        align <= BLOCK_ALIGN && align <= size
    }
}

// SAFETY (the trait's contract): every block comes from mimalloc and goes
// back to it (`mi_free` takes blocks from any of its allocation calls);
// blocks meet their layout's alignment (`plain`: mimalloc aligns every
// block to `BLOCK_ALIGN`; otherwise the aligned calls guarantee it); a
// failed allocation is a null pointer, as mimalloc reports it.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls with a size and an alignment (a power of
        // two, as `Layout` guarantees); no pointer is passed.
        unsafe {
            if Self::plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if Self::plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned (the
        // trait's contract), and mimalloc frees any of its blocks.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a block of this allocator with `layout` (the
        // trait's contract); the new block keeps the alignment by the same
        // rule as `alloc`, and mimalloc copies the contents and frees the
        // old block only when it moves it.
        unsafe {
            if Self::plain(layout.align(), new_size) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

/// Lets mimalloc return to the OS, program-wide, the freed memory whose
/// purge delay has passed, and frees the calling thread's own empty pages.
/// Cheap when there is nothing to do. With another global allocator it
/// only tidies mimalloc's own (unused) state.
pub fn purge() {
    // SAFETY: `mi_collect` takes no pointers and changes only allocator
    // state that mimalloc synchronises itself; mimalloc documents it as
    // callable from any thread at any time. `false`: purge what is due, not
    // everything (a forced collect would also decommit memory the next
    // request needs).
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// Makes C code share `n` glibc malloc arenas, whatever its thread count
/// (`mallopt(M_ARENA_MAX)`). Applies only while the process has a single
/// thread — glibc's contract for `mallopt` — so call it first thing in
/// `main`; returns whether it applied (`false` where other threads already
/// run or the C library is not glibc).
pub fn limit_c_arenas(n: u16) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if n == 0 || !single_threaded() {
            return false;
        }
        // SAFETY: `mallopt` takes two integers and no pointers. glibc marks
        // it MT-Unsafe ("init"): it writes allocator parameters that other
        // threads' `malloc` reads without a lock, so it must run before any
        // other thread exists. This thread is the process' only one (checked
        // just above), and it is here, so none can be started meanwhile.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, i32::from(n)) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

/// Whether the process has exactly one thread (`/proc/self/status`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    })
}

/// Writes glibc's per-arena malloc statistics to standard error
/// (`malloc_stats`): one `Arena N:` block per arena, which is how a test
/// or an operator counts them. Does nothing where the C library is not
/// glibc.
pub fn print_c_malloc_stats() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_stats` takes no arguments and only reads allocator
    // state under glibc's own locks before printing it.
    unsafe {
        libc::malloc_stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usable(p: *mut u8) -> usize {
        // SAFETY: `p` is a live mimalloc block.
        unsafe { mi::mi_usable_size(p.cast::<c_void>().cast_const()) }
    }

    /// Every layout the allocator may be asked for gets a block that meets
    /// its alignment, holds its size, reads zero when asked to, and keeps
    /// its contents through `realloc` in both directions.
    #[test]
    fn blocks_meet_their_layout() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=300).chain([511, 512, 1000, 4096, 65_536, 1 << 20]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                let half = size.div_ceil(2);
                let half_layout = Layout::from_size_align(half, align).unwrap();
                // SAFETY: non-zero sizes; every block is used within its
                // size and freed once, with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    assert!(usable(p) >= size);
                    std::ptr::write_bytes(p, 0xAB, size);
                    let grown = a.realloc(p, layout, size * 3);
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert!((0..size).all(|i| *grown.add(i) == 0xAB));
                    let shrunk = a.realloc(grown, grown_layout, half);
                    assert_eq!(shrunk as usize % align, 0, "shrunk {size} align {align}");
                    assert!((0..half).all(|i| *shrunk.add(i) == 0xAB));
                    a.dealloc(shrunk, half_layout);
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }

    /// The detour this allocator avoids: blocks freed and allocated again
    /// in turns, as a request path does, of a size that is a size class
    /// but no power of two. Through `mi_malloc_aligned` they come from the
    /// next class up (over-allocated); through [`Mimalloc`] every one is
    /// of its own class. (The first half is the control: should mimalloc
    /// stop over-allocating, this test says so and the detour's reason is
    /// gone.)
    #[test]
    fn small_blocks_are_not_over_allocated() {
        const SIZE: usize = 48;
        // SAFETY: a plain FFI query.
        assert_eq!(
            unsafe { mi::mi_good_size(SIZE) },
            SIZE,
            "48 is a size class"
        );
        let layout = Layout::from_size_align(SIZE, 8).unwrap();
        let churn = |alloc: &dyn Fn() -> *mut u8| {
            let mut larger = 0;
            let mut held = Vec::with_capacity(64);
            for round in 0..2_000 {
                for _ in 0..64 {
                    let p = alloc();
                    larger += usize::from(usable(p) > SIZE);
                    held.push(p);
                }
                // Free most, keep some: pages fill, empty and refill.
                for p in held.drain(round % 7..) {
                    // SAFETY: a block from `alloc`, freed once.
                    unsafe { mi::mi_free(p.cast::<c_void>()) }
                }
            }
            for p in held {
                // SAFETY: as above.
                unsafe { mi::mi_free(p.cast::<c_void>()) }
            }
            larger
        };
        // SAFETY: a plain FFI allocation call; `churn` frees the block.
        let aligned = churn(&|| unsafe { mi::mi_malloc_aligned(SIZE, 8).cast() });
        assert!(aligned > 0, "mi_malloc_aligned no longer over-allocates");
        // SAFETY: `layout` has a non-zero size; `churn` frees the block.
        let ours = churn(&|| unsafe { Mimalloc.alloc(layout) });
        assert_eq!(
            ours, 0,
            "{ours} blocks of {SIZE} bytes came from a larger class"
        );
    }
}
