//! Parses the command line, sets up logging, dispatches, and maps errors to
//! exit codes (docker's: 125 when the supervisor itself failed).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let _ = cli;
    eprintln!("supervisor: not implemented yet");
    ExitCode::from(125)
}

/// Help and version go to stdout with exit 0; every other parse error is one
/// line naming the bad value, exit 125.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or("invalid arguments");
            let line = line.strip_prefix("error: ").unwrap_or(line);
            eprintln!("supervisor: {line}");
            ExitCode::from(125)
        }
    }
}
