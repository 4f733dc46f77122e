//! The `portcullis` binary.

fn main() -> std::process::ExitCode {
    portcullis_cli::main()
}
