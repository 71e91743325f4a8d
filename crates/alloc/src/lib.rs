//! The allocator settings Portcullis needs that no crate wraps safely:
//! [`purge`] (mimalloc) and [`limit_c_arenas`] (glibc malloc).
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
//! both calls are only reachable through FFI: the exceptions are here, each
//! one line with its justification.

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
