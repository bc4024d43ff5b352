//! The `ordergate` command: a thin CLI over the library.

/// mimalloc: per-thread heaps, so the request path's small allocations do not contend on the
/// system allocator's arena locks (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ordergate::cli::main()
}
