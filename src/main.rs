//! The `sshface` command-line tool.

// WIP mod cli;

fn main() -> std::process::ExitCode {
    // WIP cli::main()
    std::process::ExitCode::SUCCESS
}
