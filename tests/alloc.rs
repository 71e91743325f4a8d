//! `portcullis_alloc::purge` gives memory freed by a now idle thread back to
//! the OS; without it mimalloc keeps it (the control half of the test, so
//! the test fails if purging ever happens by itself and the call is dead
//! weight, or if the call stops working). `portcullis_alloc::limit_c_arenas`
//! keeps C allocations of many threads in one glibc arena (again with the
//! control half: without it, each thread gets one).
//!
//! Its own test binary: it needs mimalloc as the global allocator, as in
//! the real binary, and reads this process' RSS (it links nothing else,
//! so it is quick to link).

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::{Arc, Barrier, Mutex, MutexGuard, mpsc};
use std::time::Duration;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident set of this process, in MiB.
fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

/// The tests here measure this whole process (its RSS, its arenas): one at
/// a time, whatever the harness' thread count.
fn alone() -> MutexGuard<'static, ()> {
    static ONE: Mutex<()> = Mutex::new(());
    ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Longer than mimalloc v3's default purge delay (1 s).
const PAST_PURGE_DELAY: Duration = Duration::from_millis(2500);
const MIB: usize = 1024 * 1024;

#[test]
fn purge_returns_what_an_idle_thread_freed() {
    let _alone = alone();
    let base = rss_mib();
    // A worker allocates 256 MiB in 4 KiB blocks (the size of connection
    // buffers), touches them, frees them all and then idles, like a proxy
    // worker after a burst of connections.
    let (freed_tx, freed) = mpsc::channel();
    let (stop, stop_rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        let blocks: Vec<Vec<u8>> = (0..256 * MIB / 4096).map(|i| vec![i as u8; 4096]).collect();
        drop(blocks);
        freed_tx.send(()).unwrap();
        let _ = stop_rx.recv();
    });
    freed.recv().unwrap();
    std::thread::sleep(PAST_PURGE_DELAY);
    let held = rss_mib();
    assert!(
        held >= base + 200,
        "mimalloc kept the freed memory while nothing called it: {base} -> {held} MiB"
    );
    portcullis_alloc::purge();
    let after = rss_mib();
    assert!(
        after <= base + 32,
        "purge gave the memory back: {base} MiB before, {held} held, {after} after"
    );
    stop.send(()).unwrap();
    worker.join().unwrap();
}

/// The child half of [`c_code_of_many_threads_shares_one_arena`], run in a
/// process of its own (arenas, once made, stay): with
/// `PORTCULLIS_ARENA_CHILD` set, eight threads make a C allocation each at
/// the same time, as SQLite's connection threads do, and glibc's arena
/// statistics go to stderr. Without the variable it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn arena_child() {
    let Ok(mode) = std::env::var("PORTCULLIS_ARENA_CHILD") else {
        return;
    };
    if mode == "limited" {
        assert!(portcullis_alloc::limit_c_arenas(1));
    }
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

/// What [`arena_child`] prints between glibc's statistics before and after
/// its threads ran.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THREADS_START: &str = "--- eight threads ---";

/// How many arenas glibc reports in a child running [`arena_child`],
/// before and after its threads allocated.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn arenas_in_child(mode: &str) -> (usize, usize) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["arena_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("PORTCULLIS_ARENA_CHILD", mode)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (before, after) = stderr.split_once(THREADS_START).unwrap();
    let arenas = |s: &str| s.lines().filter(|l| l.starts_with("Arena ")).count();
    (arenas(before), arenas(after))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn c_code_of_many_threads_shares_one_arena() {
    let _alone = alone();
    // Before the threads: the main thread's arena, and the test thread's
    // if it called `malloc` before the limit was set.
    let (before, after) = arenas_in_child("free");
    assert!(
        after >= before + 8,
        "each thread gets an arena of its own: {before} -> {after}"
    );
    let (before, after) = arenas_in_child("limited");
    assert!(before <= 2, "{before}");
    assert_eq!(after, before, "the eight threads made no arena");
}
