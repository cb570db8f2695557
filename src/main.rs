//! The `flextype` command: parses the command line and hands over to the library.

// Searches and uploads allocate many small short-lived objects; glibc's allocator spent a
// third of a search's CPU time in malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    flextype::cli::run()
}
