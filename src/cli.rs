//! The command line, in clap's terms. Nothing outside `main.rs` sees these
//! types: `main` turns them into the library's own option structs.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "supervisor",
    version,
    about = "Run a command in its own namespaces and own its network: bridge, veth, NAT and published ports",
    propagate_version = true
)]
pub struct Cli {
    /// More logs on stderr: -v shows each lifecycle phase with its duration, -vv everything.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Where leases and container records live.
    #[arg(long, global = true, env = "SUPERVISOR_STATE_DIR", default_value = "/run/supervisor")]
    pub state_dir: PathBuf,

    /// The host bridge containers attach to.
    #[arg(long, global = true, env = "SUPERVISOR_BRIDGE", default_value = "sv0")]
    pub bridge: String,

    /// The containers' IPv4 subnet; the gateway is its first address.
    #[arg(long, global = true, env = "SUPERVISOR_SUBNET", default_value = "172.16.0.0/24")]
    pub subnet: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new container and supervise it until it exits.
    Run(RunArgs),
    /// Check or load nft-syntax ruleset files with the supervisor's own loader.
    #[command(subcommand)]
    Ruleset(RulesetCommand),
    /// Minimal init for `run --init` (runs as PID 1 inside the container).
    #[command(hide = true)]
    Init {
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Container name (default: a short random id).
    #[arg(long)]
    pub name: Option<String>,

    /// Hostname inside the container (default: the name).
    #[arg(long)]
    pub hostname: Option<String>,

    /// Set an environment variable: K=V, or K alone to pass the host's value.
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,

    /// Working directory of the command.
    #[arg(short, long)]
    pub workdir: Option<PathBuf>,

    /// Network mode.
    #[arg(long, value_enum, default_value_t = NetworkArg::None)]
    pub network: NetworkArg,

    /// Seconds between SIGTERM/SIGINT and SIGKILL.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub stop_timeout: u64,

    /// Run a minimal init as PID 1 that reaps zombies and forwards signals.
    #[arg(long)]
    pub init: bool,

    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// Only a loopback interface.
    None,
    /// A veth pair to the host bridge, with an address, NAT and published ports.
    Bridge,
}

#[derive(Debug, Subcommand)]
pub enum RulesetCommand {
    /// Parse, check and compile; change nothing in the kernel. Exit 0 when all files are valid.
    Check(RulesetArgs),
    /// Load the files as one atomic transaction.
    Load(RulesetArgs),
}

#[derive(Debug, Args)]
pub struct RulesetArgs {
    /// Define a variable as `define NAME = VALUE` would.
    #[arg(short = 'D', long = "define", value_name = "NAME=VALUE")]
    pub defines: Vec<String>,

    /// Ruleset files in nft syntax.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}
