//! supervisor: runs a command in its own namespaces and owns its network.
//! Parses the command line, sets up logging, dispatches, and maps errors to
//! exit codes (docker's: 125 when the supervisor itself failed).

// Entered without Rust's start-up: see `entry`. Unit tests keep the
// harness's own `main`.
#![cfg_attr(not(test), no_main)]

mod bench;
mod cli;
mod entry;
mod reader_gone;
mod usage;

use std::io::{Write, stdout};
use std::path::PathBuf;
use std::time::Duration;

use supervisor::container_log::ReadOptions;
use supervisor::detach::Outcome;
use supervisor::error_chain::{Chain, eprint_line};
use supervisor::filesystem::FilesystemOptions;
use supervisor::spec::{NetworkMode, RunOptions};
use supervisor::values::Loopback6Cgroup;
use supervisor::{control, ruleset};

use crate::cli::{BenchArgs, Cli, Command, LogLevel, NetworkArg, RulesetCommand, RunArgs};
use crate::reader_gone::{Report, reader_left};

/// The C library's call to the program (see `entry`).
// SAFETY: with `no_main`, no other symbol is named `main`; the C library
// calls it once, with the arguments std reads on its own. (A unit test
// build has the harness's `main`, and this one, unexported, unused.)
#[cfg_attr(not(test), unsafe(no_mangle))]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    entry::run(dispatch)
}

/// Parses, dispatches, and gives the process's exit code.
fn dispatch() -> u8 {
    // An engine runs us as a CNI plugin: its protocol, not our command line.
    // `cni` with options around it (`cni --help`, `--state-dir X cni`) is a
    // person's: the parse below answers.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cni_alone = args.len() == 2 && args[1] == "cni";
    let names_cni = args.iter().skip(1).any(|a| a == "cni");
    if cni_alone || (std::env::var_os("CNI_COMMAND").is_some() && !names_cni) {
        // Stderr is not the engine's answer: logs only when asked for.
        if std::env::var_os("RUST_LOG").is_some() {
            init_logging(0, None);
        }
        return supervisor::cni::main();
    }
    let cli = match Cli::parse_args(args.clone()) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err, &args),
    };
    init_logging(cli.global.verbose, cli.global.log_level);
    let net = network_options(&cli);
    match cli.command {
        Command::Run(args) if args.dry_run => {
            let options = run_options(*args, net, cli.global.state_dir);
            let plan = match supervisor::supervisor::dry_run(options) {
                Ok(plan) => plan,
                Err(err) => return exit(Err(err), |e| e.exit_code()),
            };
            // print! would panic (101) on a closed pipe: `--dry-run | head`.
            match write!(stdout().lock(), "{plan}").and_then(|()| stdout().flush()) {
                Ok(()) => 0,
                Err(err) if reader_left(&err) => 0,
                Err(err) => {
                    eprint_line(format_args!("supervisor: writing the plan: {err}"));
                    125
                }
            }
        }
        Command::Run(args) if args.detach => {
            let log_max_size = args.log_max_size;
            let options = run_options(*args, net, cli.global.state_dir);
            detached(supervisor::detach::run(options, log_max_size))
        }
        Command::Run(args) => {
            let options = run_options(*args, net, cli.global.state_dir);
            exit(supervisor::supervisor::run(options), |e| e.exit_code())
        }
        Command::Bench(args) => bench(args, cli.global.ipv6),
        Command::Ps(args) => {
            let options = control::PsOptions {
                filters: args.filter,
                quiet: args.quiet,
                json: args.json,
                format: args.format,
                all: args.all,
            };
            done(control::ps(&cli.global.state_dir, &options, &mut stdout()))
        }
        Command::Rm(args) => done(control::rm(
            &cli.global.state_dir,
            &args.containers,
            args.force,
            &mut Report::default(),
        )),
        Command::Stop(args) => {
            let time = args.time.map(Duration::from_secs);
            done(match args.all {
                true => control::stop_all(&cli.global.state_dir, time, &mut Report::default()),
                false => control::stop(
                    &cli.global.state_dir,
                    &args.containers,
                    time,
                    &mut Report::default(),
                ),
            })
        }
        Command::Kill(args) => done(control::kill(
            &cli.global.state_dir,
            &args.containers,
            args.signal,
            &mut Report::default(),
        )),
        Command::Inspect(args) => done(control::inspect(
            &cli.global.state_dir,
            &args.containers,
            &mut stdout(),
        )),
        Command::Logs(args) => {
            let options = ReadOptions {
                follow: args.follow,
                tail: args.tail,
                timestamps: args.timestamps,
            };
            done(control::logs(
                &cli.global.state_dir,
                &args.container,
                &options,
                &mut stdout(),
            ))
        }
        Command::Exec(args) => {
            let options = control::ExecOptions {
                container: args.container,
                command: args.command,
                env: args.env,
                workdir: args.workdir,
                user: args.user,
                interactive: args.interactive,
                tty: args.tty,
            };
            exit(
                control::exec(&cli.global.state_dir, &options),
                control::ExecError::exit_code,
            )
        }
        Command::Gc => done(control::gc(
            &cli.global.state_dir,
            &cli.global.bridge,
            &cli.global.subnet,
            &mut Report::default(),
        )),
        Command::Check => match control::check(&cli.global.state_dir, &mut Report::default()) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(err) => done(Err(err)),
        },
        Command::Ruleset(command) => ruleset_command(command),
        // Reached with options before `cni` only (see above): refused, not
        // honoured, since the engine's later calls (DEL, CHECK, GC) come
        // without them and would look in another state directory.
        Command::Cni => {
            eprint_line(format_args!(
                "supervisor: cni takes no options: its state directory is the network \
                 configuration's stateDir, else $SUPERVISOR_STATE_DIR, as every call of the \
                 engine finds it"
            ));
            125
        }
    }
}

/// The global options of the bridge network, as `run` takes them.
struct NetworkOptions {
    bridge: String,
    subnet: String,
    ipv6: bool,
    subnet6: String,
    loopback6_cgroup: Loopback6Cgroup,
}

fn network_options(cli: &Cli) -> NetworkOptions {
    NetworkOptions {
        bridge: cli.global.bridge.clone(),
        subnet: cli.global.subnet.clone(),
        ipv6: cli.global.ipv6,
        subnet6: cli.global.subnet6.clone(),
        loopback6_cgroup: cli.global.loopback6_cgroup.clone().unwrap_or_default(),
    }
}

fn run_options(args: RunArgs, net: NetworkOptions, state_dir: PathBuf) -> RunOptions {
    RunOptions {
        name: args.name,
        hostname: args.hostname,
        env: args.env,
        env_file: args.env_file,
        labels: args.label,
        label_file: args.label_file,
        workdir: args.workdir,
        network: match args.network {
            NetworkArg::None => NetworkMode::None,
            NetworkArg::Bridge => NetworkMode::Bridge,
            NetworkArg::Container(name) => NetworkMode::Container(name),
        },
        bridge: net.bridge,
        subnet: net.subnet,
        ipv6: net.ipv6,
        subnet6: net.subnet6,
        loopback6_cgroup: net.loopback6_cgroup,
        ip: args.ip,
        ip6: args.ip6,
        publish: args.publish,
        state_dir,
        stop_timeout: Duration::from_secs(args.stop_timeout),
        init: args.init,
        security_opt: args.security_opt,
        add_host: args.add_host,
        dns: args.dns,
        dns_search: args.dns_search,
        dns_option: args.dns_option,
        filesystem: FilesystemOptions {
            rootfs: args.rootfs,
            rw_host: args.rw_host,
            volumes: args.volume,
            tmpfs: args.tmpfs,
            read_only: args.read_only,
        },
        user: args.user,
        cap_add: args.cap_add,
        cap_drop: args.cap_drop,
        memory: args.memory,
        cpus: args.cpus,
        pids_limit: args.pids_limit,
        command: args.command,
    }
}

/// `bench`: runs containers with this very binary, or `--binary`; `ipv6`
/// (the global `--ipv6`) also dual stack, alternated with IPv4.
fn bench(args: BenchArgs, ipv6: bool) -> u8 {
    let supervisor = args.binary.unwrap_or_else(|| {
        std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
    });
    if args.cni && ipv6 {
        let refused =
            bench::Error::Option("--ipv6 with --cni: the CNI bench has no dual stack".into());
        return exit(Err(refused), bench::Error::exit_code);
    }
    if args.cni {
        let attached = if args.scale.is_empty() {
            vec![0, 100]
        } else {
            args.scale
        };
        let options = bench::cni::Options {
            supervisor,
            samples: args.containers,
            attached,
            pause: Duration::from_millis(args.pause),
            reference: !args.no_reference,
            routed: args.cni_mode == "routed",
        };
        let result = bench::cni::run(&options, &mut Report::default()).map(|()| 0);
        return exit(result, bench::Error::exit_code);
    }
    let options = bench::Options {
        supervisor,
        containers: args.containers,
        concurrency: args.concurrency,
        pause: Duration::from_millis(args.pause),
        publish: args.publish,
        baseline: args.baseline,
        ipv6,
        scale: args.scale,
        restart_same_port: args.restart_same_port,
        process_start: args.process_start,
        json: args.json,
        csv: args.csv,
        plot: args.plot,
    };
    let result = bench::run(&options, &mut Report::default()).map(|()| 0);
    exit(result, bench::Error::exit_code)
}

/// `run -d`: the name on stdout and 0 once it runs; else as `run`.
fn detached(result: Result<Outcome, supervisor::supervisor::Error>) -> u8 {
    match result {
        Ok(Outcome::Started(name)) => {
            // The container runs whether or not the caller still reads.
            let _ = writeln!(stdout(), "{name}");
            0
        }
        Ok(Outcome::Failed { code, message }) => {
            eprint_line(format_args!("supervisor: {message}"));
            code
        }
        Err(err) => exit(Err(err), |e| e.exit_code()),
    }
}

/// 0 for a command other than `run`, or when stdout's reader has gone;
/// on failure one line on stderr and 1.
fn done(result: Result<(), control::Error>) -> u8 {
    let result = match result {
        Err(control::Error::Output(err)) if reader_left(&err) => Ok(()),
        other => other,
    };
    exit(result.map(|()| 0), control::Error::exit_code)
}

/// The code on success; on failure one line on stderr and the error's code.
fn exit<E: std::error::Error>(result: Result<u8, E>, code: impl Fn(&E) -> u8) -> u8 {
    match result {
        Ok(status) => status,
        Err(err) => {
            eprint_line(format_args!("supervisor: {}", Chain(&err)));
            code(&err)
        }
    }
}

/// An event as the supervisor's own errors read: `supervisor: warning:
/// MESSAGE`, no timestamp or padded level (those are -v's).
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let word = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "supervisor: {word}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Warnings and errors by default; `--verbose` (or `--log-level debug`)
/// adds each lifecycle phase with its duration, twice (or `trace`)
/// everything. RUST_LOG, when set, wins. Always stderr: the container's
/// stdout is the user's.
fn init_logging(verbose: u8, level: Option<LogLevel>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = level.unwrap_or(match verbose {
        0 => LogLevel::Warn,
        1 => LogLevel::Debug,
        _ => LogLevel::Trace,
    });
    // The level for everything, or None where our crate logs more.
    let (max, default) = match level {
        LogLevel::Error => (Some(LevelFilter::ERROR), "error"),
        LogLevel::Warn => (Some(LevelFilter::WARN), "warn"),
        LogLevel::Info => (None, "warn,supervisor=info"),
        LogLevel::Debug => (None, "warn,supervisor=debug"),
        LogLevel::Trace => (Some(LevelFilter::TRACE), "trace"),
    };
    let logger = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // An EnvFilter (directives to parse, hash maps seeded by getrandom) only
    // for RUST_LOG's directives: every `run` starts here, and `bench` runs
    // each container with --verbose.
    if std::env::var_os("RUST_LOG").is_some() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
        return logger.with_env_filter(filter).init();
    }
    match max {
        // Warnings and errors alone (no -v): read as the errors are, not
        // as a log.
        Some(max) if max <= LevelFilter::WARN => {
            logger.event_format(Plain).with_max_level(max).init()
        }
        Some(max) => logger.with_max_level(max).init(),
        // `default`'s directives, as a list of targets.
        None => {
            let ours = match level {
                LogLevel::Info => LevelFilter::INFO,
                _ => LevelFilter::DEBUG,
            };
            let targets = Targets::new()
                .with_default(LevelFilter::WARN)
                .with_target("supervisor", ours);
            logger.with_max_level(ours).finish().with(targets).init();
        }
    }
}

/// `ruleset check|load`: exit 0 when every file is valid (and loaded), 1
/// otherwise, with one `FILE:LINE:COL: message` line per error.
fn ruleset_command(command: RulesetCommand) -> u8 {
    let (args, load) = match command {
        RulesetCommand::Check(args) => (args, false),
        RulesetCommand::Load(args) => (args, true),
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
        Ok(()) => 0,
        Err(err) => {
            eprint_line(Chain(&err));
            1
        }
    }
}

/// Help and version go to stdout with exit 0; every other parse error is
/// clap's whole message, one line per paragraph, exit 125.
fn usage_error(mut err: clap::Error, args: &[std::ffi::OsString]) -> u8 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            0
        }
        _ => {
            usage::shorten_values(&mut err);
            usage::drop_environment_globals(&mut err, args);
            let mut lines = usage::lines(&err.to_string());
            if err.kind() == ErrorKind::InvalidUtf8
                && let Some(which) = usage::not_utf8(args)
            {
                lines[0] = format!("supervisor: {which}");
            }
            for line in lines {
                eprint_line(line);
            }
            125
        }
    }
}
