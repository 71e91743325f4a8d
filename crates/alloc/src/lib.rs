//! Hands memory freed anywhere in the process back to the OS, for a
//! process that has gone quiet.
//!
//! mimalloc (v3) returns ("purges") freed pages to the OS only after a
//! delay, and only when some thread next calls into the allocator's slow
//! path. A proxy that served a burst of 10,000 connections and then went
//! idle makes no such calls, so it kept the burst's memory for good
//! (measured: 278 MB 30 s after the load instead of ~80). [`purge`], called
//! every few seconds from a background task, is that call.
//!
//! This is a crate of its own because Portcullis forbids `unsafe` code and
//! `mi_collect` is only reachable through FFI: the exception is one line,
//! here, with its justification.

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
