//! The `portcullis` binary.

/// mimalloc: the token path allocates small objects on request threads and frees them on the
/// audit writer's; glibc's allocator spent a third of a warm request on that (measured).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    portcullis_cli::main()
}
