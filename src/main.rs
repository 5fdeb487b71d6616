//! supervisor: runs a command in its own namespaces and owns its network.
//! Parses the command line, sets up logging, dispatches, and maps errors to
//! exit codes (docker's: 125 when the supervisor itself failed).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use supervisor::ruleset;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    match cli.command {
        cli::Command::Ruleset(command) => ruleset_command(command),
        _ => {
            eprintln!("supervisor: not implemented yet");
            ExitCode::from(125)
        }
    }
}

/// `ruleset check|load`: exit 0 when every file is valid (and loaded), 1
/// otherwise, with one `FILE:LINE:COL: message` line per error.
fn ruleset_command(command: cli::RulesetCommand) -> ExitCode {
    let (args, load) = match command {
        cli::RulesetCommand::Check(args) => (args, false),
        cli::RulesetCommand::Load(args) => (args, true),
    };
    let defines: Result<Vec<ruleset::Define>, _> = args.defines.iter().map(|d| d.parse()).collect();
    let result = defines
        .map_err(ruleset::ApplyError::from)
        .and_then(|defines| {
            if load {
                ruleset::apply(&args.files, &defines)
            } else {
                ruleset::prepare(&args.files, &defines)
                    .map(drop)
                    .map_err(Into::into)
            }
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(1)
        }
    }
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
