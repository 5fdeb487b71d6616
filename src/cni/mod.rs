//! The supervisor as a CNI plugin (spec 1.1.0, answering for 0.4.0 and
//! 1.0.0 too): the same binary, run by an engine (podman, containerd,
//! CRI-O) with `CNI_COMMAND` in its environment, or as `supervisor cni`.
//!
//! `protocol` reads the environment and writes errors; `config` checks the
//! network configuration; `attachment` is the main plugin (bridge, veth,
//! lease, elements, record: `run`'s own plan and apply steps, in the
//! engine's namespace); `chained` publishes ports after another plugin;
//! `result` writes ADD's answer. DEL, CHECK and GC work from the records,
//! for both modes.
//!
//! No multi-threaded runtime: a current-thread one carries the netlink
//! connections, as `run`'s does.

mod attachment;
mod chained;
pub mod config;
mod forget;
pub mod protocol;
mod result;
mod routed;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde_json::{Map, Value};

use self::config::Config;
use self::forget::Background;
use self::protocol::{CURRENT, CniError, Command, Invocation, code};

pub use attachment::{
    LABEL_CHAINED, LABEL_CONTAINER, LABEL_IFNAME, LABEL_NETNS, LABEL_NETWORK, owner,
};

/// Runs one invocation from this process's environment and stdin; writes
/// the answer on stdout and returns the exit code (0, or 1 with an error
/// document).
pub fn main() -> u8 {
    // The engine waits for ADD and DEL on a container's start and removal:
    // a few milliseconds of work, bounded, as `run`'s start (see
    // crate::realtime). On a busy machine an ordinary ADD waited for a CPU
    // four times as long as it ran. From here, before the configuration is
    // read and decoded: once real-time only after it, an ADD was still
    // preempted in serde_json for 8 ms (perf sched, load 5). Until this
    // process's end; what it forks starts ordinary (see forget::Background).
    if matches!(
        std::env::var_os("CNI_COMMAND")
            .as_deref()
            .and_then(|c| c.to_str())
            .and_then(Command::parse),
        Some(Command::Add | Command::Del)
    ) {
        crate::realtime::enter();
    }
    let env = match environment(std::env::vars_os()) {
        Ok(env) => env,
        Err(err) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(err.to_json(CURRENT).as_bytes());
            return 1;
        }
    };
    let mut later = Background::default();
    let (answer, status) = match read_config(std::io::stdin().lock()) {
        Ok(stdin) => handle(&env, &stdin, &mut later),
        Err(err) => (err.to_json(CURRENT), 1),
    };
    let mut out = std::io::stdout().lock();
    // An engine that stopped reading has its answer already, or none.
    let _ = out.write_all(answer.as_bytes()).and_then(|()| out.flush());
    drop(out);
    let t = std::time::Instant::now();
    later.procfs.extend(crate::netlink::procfs::to_close());
    later.start();
    crate::milestones::phase("after the answer, started", t);
    status
}

/// An exclusive `flock` on `STATE_DIR/cni.lock`, waited for.
fn serialize(state_dir: &std::path::Path) -> Result<crate::state::DirLock, CniError> {
    crate::state::file::lock_named(state_dir, "cni.lock")
        .map_err(|err| attachment::system(&format!("locking {}", err.path.display()), &err.source))
}

/// The environment as text. A CNI variable that is not UTF-8 is code 4
/// naming it (it would otherwise read as unset); others are left out.
fn environment(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
) -> Result<BTreeMap<String, String>, CniError> {
    let mut env = BTreeMap::new();
    for (key, value) in vars {
        let Ok(key) = key.into_string() else { continue };
        match value.into_string() {
            Ok(value) => {
                env.insert(key, value);
            }
            Err(_) if key.starts_with("CNI_") => {
                return Err(CniError::new(code::ENV, format!("{key} is not UTF-8")));
            }
            Err(_) => {}
        }
    }
    Ok(env)
}

/// The most of stdin a configuration may take. A real one is a few KB
/// (a thousand port mappings are under 100 KB); decoding an unbounded one
/// takes memory many times its size.
pub const CONFIG_LIMIT: u64 = 4 << 20;

/// Reads the configuration, refusing (code 6) one over `CONFIG_LIMIT`
/// without reading the rest.
pub fn read_config(input: impl Read) -> Result<Vec<u8>, CniError> {
    let mut stdin = Vec::new();
    input
        .take(CONFIG_LIMIT + 1)
        .read_to_end(&mut stdin)
        .map_err(|err| CniError::new(code::DECODE, format!("reading stdin: {err}")))?;
    if stdin.len() as u64 > CONFIG_LIMIT {
        return Err(CniError::new(
            code::DECODE,
            format!("the network configuration is larger than {CONFIG_LIMIT} bytes"),
        ));
    }
    Ok(stdin)
}

/// One invocation: the answer for stdout (possibly empty) and the exit
/// code; what is left to do after the answer goes into `later`.
pub fn handle(
    env: &BTreeMap<String, String>,
    stdin: &[u8],
    later: &mut Background,
) -> (String, u8) {
    // Errors speak the configuration's version when it has one we know.
    let doc = config::decode(stdin);
    let version = doc
        .as_ref()
        .ok()
        .and_then(config::version_of)
        .filter(|v| protocol::SUPPORTED.contains(v))
        .unwrap_or(CURRENT)
        .to_string();
    match run(env, doc, later) {
        Ok(answer) => (answer, 0),
        Err(err) => (err.to_json(&version), 1),
    }
}

fn run(
    env: &BTreeMap<String, String>,
    doc: Result<Map<String, Value>, CniError>,
    later: &mut Background,
) -> Result<String, CniError> {
    let invocation = protocol::invocation(env)?;
    if invocation.command == Command::Version {
        // Answered whatever the document: an engine asks before it knows.
        let asked = doc.as_ref().ok().and_then(config::version_of);
        let version = asked
            .filter(|v| protocol::SUPPORTED.contains(v))
            .unwrap_or(CURRENT);
        return Ok(protocol::version_info(version));
    }
    let doc = doc?;
    if let Some(version) = config::version_of(&doc) {
        protocol::check_version(version)?;
    }
    let program = std::env::args_os().next().map(std::path::PathBuf::from);
    let program = program
        .as_deref()
        .and_then(std::path::Path::file_name)
        .and_then(std::ffi::OsStr::to_str);
    config::check_entry(&doc, program)?;
    let config = config::parse(&doc, env.get("SUPERVISOR_STATE_DIR").map(String::as_str))?;
    if matches!(invocation.command, Command::Add) {
        // Only what makes an attachment refuses the host links' prefix: a
        // DEL, CHECK or GC on such a bridge, made before it was refused,
        // still cleans up.
        if let Some(why) = crate::network::new_bridge_name_problem(&config.bridge) {
            return Err(CniError::new(
                code::CONFIG,
                format!("bridge: {:?}: {why}", config.bridge),
            ));
        }
    }
    if matches!(invocation.command, Command::Gc | Command::Status)
        && !protocol::at_least(&config.cni_version, "1.1.0")
    {
        return Err(CniError::new(
            code::VERSION,
            format!(
                "{} needs cniVersion 1.1.0 or later, the configuration says {}",
                invocation.command, config.cni_version
            ),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| attachment::system("starting the async runtime", &err))?;
    let t = std::time::Instant::now();
    let before = scheduled();
    let answer = runtime.block_on(command(&invocation, &config, later));
    crate::milestones::phase(&invocation.command.to_string(), t);
    if let (Some(before), Some(after)) = (before, scheduled()) {
        // What of the wall time above was ours: the rest is waiting, for a
        // CPU (another process's turn) or for the kernel (a lock, RTNL).
        tracing::debug!(
            "{}: on a CPU {} us, waiting for one {} us",
            invocation.command,
            (after.0 - before.0) / 1000,
            (after.1 - before.1) / 1000
        );
    }
    answer
}

/// This thread's time on a CPU and waiting in a run queue so far, in
/// nanoseconds (/proc/thread-self/schedstat), when debug logs are on.
fn scheduled() -> Option<(u64, u64)> {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return None;
    }
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

async fn command(
    invocation: &Invocation,
    config: &Config,
    later: &mut Background,
) -> Result<String, CniError> {
    // ADD, DEL, CHECK and GC one at a time per state directory: a DEL or
    // GC between ADD's claim of the record and its end removed the record
    // and lease while ADD went on to make the link and elements, which
    // then nobody owned (and the address could be leased twice).
    let _serialized = match invocation.command {
        Command::Add | Command::Del | Command::Check | Command::Gc => {
            // As `run` does: one someone else can write plants records
            // that name what DEL and GC delete.
            crate::state::check_dir(&config.state_dir).map_err(|err| {
                let err = crate::error_chain::Chain(&err);
                CniError::new(code::CONFIG, format!("stateDir: {err}"))
            })?;
            Some(serialize(&config.state_dir)?)
        }
        Command::Version | Command::Status => None,
    };
    match invocation.command {
        Command::Add => match &config.prev_result {
            Some(prev) => Ok(chained::add(invocation, config, prev).await?.to_string()),
            None => Ok(attachment::add(invocation, config)
                .await?
                .to_json(&config.cni_version)
                .to_string()),
        },
        Command::Del => {
            attachment::repair_lent(invocation);
            let found = attachment::find(
                &config.state_dir,
                &config.name,
                &invocation.container_id,
                &invocation.ifname,
            );
            match found {
                Some(record) => {
                    let (work, removed) = crate::milestones::timed("DEL", || {
                        attachment::remove(&config.state_dir, &record)
                    });
                    later.extend(work);
                    removed?;
                }
                None => {
                    let other = attachment::other_network(
                        &config.state_dir,
                        &config.name,
                        &invocation.container_id,
                        &invocation.ifname,
                    );
                    if let Some(other) = other {
                        tracing::warn!(
                            "DEL: container {} has attachment {} on network {other}, not {}: \
                             left as it is",
                            invocation.container_id,
                            invocation.ifname,
                            config.name
                        );
                    }
                }
            }
            Ok(String::new())
        }
        Command::Check => {
            attachment::repair_lent(invocation);
            let record = attachment::find(
                &config.state_dir,
                &config.name,
                &invocation.container_id,
                &invocation.ifname,
            )
            .ok_or_else(|| {
                CniError::new(
                    code::NOT_ATTACHED,
                    format!(
                        "container {} has no attachment {} on network {}",
                        invocation.container_id, invocation.ifname, config.name
                    ),
                )
            })?;
            if record.labels.contains_key(LABEL_CHAINED) {
                attachment::check_elements(config, &record)?;
            } else {
                attachment::check(invocation, config, &record).await?;
            }
            Ok(String::new())
        }
        Command::Gc => {
            let mut failed = None;
            for record in attachment::of_network(&config.state_dir, &config.name)? {
                let container = record.labels.get(LABEL_CONTAINER);
                let ifname = record.labels.get(LABEL_IFNAME);
                let valid = config
                    .valid_attachments
                    .iter()
                    .any(|(c, i)| Some(c) == container && Some(i) == ifname);
                if !valid {
                    let (work, removed) = attachment::remove(&config.state_dir, &record);
                    later.extend(work);
                    if let Err(err) = removed {
                        failed.get_or_insert(err);
                    }
                }
            }
            failed.map_or(Ok(String::new()), Err)
        }
        Command::Status => {
            // Not ready where ADD would refuse the directory, and nothing
            // made where another user could lead it.
            crate::state::check_dir(&config.state_dir).map_err(|err| {
                let err = crate::error_chain::Chain(&err);
                CniError::new(
                    code::NOT_READY,
                    format!("the state directory cannot be used: {err}"),
                )
            })?;
            std::fs::create_dir_all(&config.state_dir).map_err(|err| {
                CniError::new(
                    code::NOT_READY,
                    format!(
                        "the state directory {} cannot be made: {err}",
                        config.state_dir.display()
                    ),
                )
            })?;
            Ok(String::new())
        }
        Command::Version => Ok(protocol::version_info(&config.cni_version)),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn a_cni_variable_that_is_not_utf8_is_code_4_naming_it_not_unset() {
        let vars = |name: &str| {
            vec![
                (OsString::from("CNI_COMMAND"), OsString::from("ADD")),
                (OsString::from(name), OsString::from_vec(b"a\xff".to_vec())),
            ]
            .into_iter()
        };
        let err = environment(vars("CNI_CONTAINERID")).unwrap_err();
        assert_eq!(
            (err.code, err.msg.as_str()),
            (4, "CNI_CONTAINERID is not UTF-8")
        );
        assert_eq!(environment(vars("LANG")).unwrap().len(), 1);
    }
}
