fn main() -> std::process::ExitCode {
    // C code (SQLite) allocates through glibc; one arena, not one per
    // pooled connection's thread (see `portcullis_alloc::limit_c_arenas`).
    portcullis_alloc::limit_c_arenas(1);
    portcullis::cli::main()
}

// glibc malloc showed up as ~11% of proxy CPU under load; mimalloc is a
// drop-in global allocator with per-thread free lists. Through
// `portcullis_alloc::Mimalloc`, not the `mimalloc` crate's allocator, which
// sends every block through mimalloc's aligned slow path (see there).
#[global_allocator]
static GLOBAL: portcullis_alloc::Mimalloc = portcullis_alloc::Mimalloc;
