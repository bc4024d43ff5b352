//! The `ordergate` command: a thin CLI over the library.

fn main() -> std::process::ExitCode {
    ordergate::cli::main()
}
