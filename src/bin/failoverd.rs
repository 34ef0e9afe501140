//! The `failoverd` command (everything it does is in the library's `cli` module).

fn main() -> std::process::ExitCode {
    failoverd::cli::main()
}
