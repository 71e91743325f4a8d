//! `portcullis_alloc::limit_c_arenas` keeps the C allocations of many
//! threads in one glibc arena; without it each thread gets one (the control
//! half, so the test fails if glibc ever shares arenas by itself and the
//! call is dead weight, or if the call stops working).
//!
//! A test binary without libtest's harness: the limit applies only while a
//! process has one thread (glibc's contract for `mallopt`), and libtest
//! runs every test on a thread of its own. `main` re-runs this binary as a
//! child per case, with the environment that could set glibc's own limit
//! removed; a child limits (or not) while it is still single-threaded,
//! then eight threads make a C allocation each at the same time, as
//! SQLite's connection threads do, and glibc's arena statistics go to
//! stderr before and after.

// Test code: a failed expectation is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, ExitCode};
use std::sync::{Arc, Barrier};

const CHILD: &str = "PORTCULLIS_ARENA_CHILD";
/// What a child prints between glibc's statistics before and after its
/// threads ran.
const THREADS_START: &str = "--- eight threads ---";

fn main() -> ExitCode {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        println!("arenas: not glibc, nothing to test");
        return ExitCode::SUCCESS;
    }
    match std::env::var(CHILD).as_deref() {
        Ok(mode) => child(mode),
        Err(_) => parent(),
    }
    ExitCode::SUCCESS
}

fn parent() {
    // Before the threads: the main thread's arena only. The control child
    // asks for room for 64 arenas, so it does not depend on the CPU count
    // (glibc's default is eight per CPU).
    let (before, after) = arenas_in_child("free");
    assert!(
        after >= before + 8,
        "each thread gets an arena of its own: {before} -> {after}"
    );
    let (before, after) = arenas_in_child("limited");
    assert_eq!(after, before, "the eight threads made no arena");
    println!("arenas: ok (one arena for eight threads; {before} -> {after})");
}

/// How many arenas glibc reports in a child, before and after its threads
/// allocated.
fn arenas_in_child(mode: &str) -> (usize, usize) {
    let out = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, mode)
        .env_remove("MALLOC_ARENA_MAX")
        .env_remove("GLIBC_TUNABLES")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (before, after) = stderr.split_once(THREADS_START).unwrap();
    let arenas = |s: &str| s.lines().filter(|l| l.starts_with("Arena ")).count();
    (arenas(before), arenas(after))
}

fn child(mode: &str) {
    let limit = if mode == "limited" { 1 } else { 64 };
    assert!(portcullis_alloc::limit_c_arenas(limit));
    portcullis_alloc::print_c_malloc_stats();
    eprintln!("{THREADS_START}");
    let together = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let together = together.clone();
            std::thread::spawn(move || {
                together.wait();
                // `realpath(3)` returns a buffer glibc `malloc`ed: a C
                // allocation made without `unsafe`.
                std::fs::canonicalize("/").unwrap();
                // Alive until all have allocated, so no thread inherits
                // the arena of one that has ended.
                together.wait();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    portcullis_alloc::print_c_malloc_stats();
}
