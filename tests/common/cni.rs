//! What the CNI tests share: the plugin driven as an engine drives it
//! (the command and its parameters in the environment, the configuration
//! on stdin, the answer parsed from stdout), and the checks of what an
//! attachment holds.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::{HostNs, container_veths, eventually, leases, records, stderr};

/// A network configuration of ours in `version`, with `extra` fields.
pub fn conf(version: &str, extra: Value) -> String {
    let mut doc = json!({
        "cniVersion": version,
        "name": "net1",
        "type": "supervisor",
        "bridge": "sv0",
        "subnet": "10.88.7.0/24",
    });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    doc.to_string()
}

/// The `portMappings` capability for one TCP port.
pub fn publishing(host_port: u16, container_port: u16) -> Value {
    json!({"runtimeConfig": {"portMappings": [
        {"hostPort": host_port, "containerPort": container_port, "protocol": "tcp", "hostIP": ""}
    ]}})
}

/// What the plugin answered: its exit code and its stdout as JSON (Null
/// when empty).
#[derive(Debug)]
pub struct Answer {
    pub code: i32,
    pub doc: Value,
    /// Shown (through Debug) when an assertion fails.
    pub stderr: String,
}

impl Answer {
    pub fn ok(self) -> Value {
        assert_eq!(self.code, 0, "{self:?}");
        self.doc
    }

    /// The error's code and message; the exit code must be 1.
    pub fn error(self) -> (u64, String) {
        assert_eq!(self.code, 1, "{self:?}");
        let code = self.doc["code"].as_u64().expect("an error code");
        (
            code,
            self.doc["msg"].as_str().unwrap_or_default().to_string(),
        )
    }
}

/// Runs the plugin in `ns` with `env` (CNI_* variables) and `stdin`.
pub fn plugin(ns: &HostNs, env: &[(&str, &str)], stdin: &str) -> Answer {
    let mut cmd = ns.supervisor();
    for key in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
        "SUPERVISOR_STATE_DIR",
    ] {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    answer(cmd, stdin)
}

/// Killed, failing the test, when it has not answered within 30 s: no
/// input may hang the engine.
pub fn answer(mut cmd: Command, stdin: &str) -> Answer {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the plugin");
    // A plugin that refuses an oversized configuration stops reading it.
    let written = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    if let Err(err) = written {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{err}");
    }
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait for the plugin").is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the plugin hung: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("wait for the plugin");
    let text = String::from_utf8_lossy(&out.stdout);
    let doc = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
    };
    Answer {
        code: out.status.code().unwrap_or(-1),
        doc,
        stderr: stderr(&out),
    }
}

/// `command` for container `id` with `CNI_IFNAME=eth0`, in netns `id`.
pub fn call(ns: &HostNs, command: &str, id: &str, conf: &str) -> Answer {
    call_into(ns, command, id, &format!("/run/netns/{id}"), "eth0", conf)
}

/// `command` for container `id` in `netns` as `ifname`.
pub fn call_into(
    ns: &HostNs,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    conf: &str,
) -> Answer {
    call_with(ns, command, id, netns, ifname, conf, &[])
}

/// `call_into` with `extra` variables in the environment too.
pub fn call_with(
    ns: &HostNs,
    command: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    conf: &str,
    extra: &[(&str, &str)],
) -> Answer {
    let mut env = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    env.extend_from_slice(extra);
    plugin(ns, &env, conf)
}

pub fn netns_add(ns: &HostNs, name: &str) {
    ns.ok(&format!(
        "ip netns add {name} && ip -n {name} link set lo up"
    ));
}

/// The map elements of the tcp_ports map, one a line.
pub fn tcp_ports(ns: &HostNs) -> String {
    ns.ok("nft list map ip supervisor tcp_ports 2>/dev/null | grep -v type | grep -E ' : ' || true")
}

/// Everything an attachment holds, as the host shows it: records, leases,
/// port elements, container veths.
pub fn held(ns: &HostNs) -> (String, String, String, Vec<String>) {
    (records(ns), leases(ns), tcp_ports(ns), container_veths(ns))
}

/// A one-shot TCP server in netns `name` that answers `reply`.
pub fn serve(ns: &HostNs, name: &str, port: u16, reply: &str) -> Child {
    ns.command("ip")
        .args(["netns", "exec", name, "busybox", "nc", "-ll", "-p"])
        .arg(port.to_string())
        .args(["-e", "echo", reply])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start a listener")
}

/// Connects from `run` (a shell runner) until `reply` comes back.
pub fn reaches(what: &str, run: impl Fn() -> String, reply: &str) {
    eventually(what, Duration::from_secs(10), || {
        run().contains(reply).then_some(())
    });
}

/// No record, lease, element or container veth is left, and `supervisor
/// check` finds nothing either.
/// A DEL's veth goes in the background, or with its namespace.
pub fn assert_nothing_left(ns: &HostNs) {
    super::assert_no_state(ns);
    super::wait_for_no_veth(ns);
}
