//! `portcullis_alloc::purge` gives memory freed by a now idle thread back to
//! the OS; without it mimalloc keeps it (the control half of the test, so
//! the test fails if purging ever happens by itself and the call is dead
//! weight, or if the call stops working).
//!
//! Its own test binary: it needs mimalloc as the global allocator, as in
//! the real binary, and reads this process' RSS (it links nothing else,
//! so it is quick to link).

// Helpers outside `#[test]` functions are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: portcullis_alloc::Mimalloc = portcullis_alloc::Mimalloc;

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

/// Longer than mimalloc v3's default purge delay (1 s).
const PAST_PURGE_DELAY: Duration = Duration::from_millis(2500);
const MIB: usize = 1024 * 1024;

#[test]
fn purge_returns_what_an_idle_thread_freed() {
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
