//! The CNI plugin driven as an engine drives it: the command and its
//! parameters in the environment, the configuration on stdin, the answer
//! parsed from stdout. Each test builds its own host (tests/common) and a
//! network namespace for its "container" with `ip netns add` inside it.

mod common;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::cni::{
    Answer, answer, assert_nothing_left, call, call_into, call_with, conf, held, netns_add, plugin,
    publishing, reaches, serve, tcp_ports,
};
use common::{
    HostNs, container_veths, elements, eventually, leases, neighbour_entries, netfilter_sockets,
    records, stderr,
};
use serde_json::{Value, json};

const VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

#[test]
fn every_command_answers_in_every_supported_version() {
    let Some(ns) = HostNs::new("every_command_answers_in_every_supported_version") else {
        return;
    };
    netns_add(&ns, "c1");
    for (round, version) in VERSIONS.into_iter().enumerate() {
        // Addresses go round robin: each ADD after a DEL takes the next.
        let host_part = 2 + round;
        let info = call(&ns, "VERSION", "c1", &conf(version, json!({}))).ok();
        assert_eq!(info["cniVersion"], version);
        assert_eq!(info["supportedVersions"], json!(VERSIONS));

        let conf = conf(version, publishing(8080, 8000));
        let result = call(&ns, "ADD", "c1", &conf).ok();
        assert_eq!(result["cniVersion"], version);
        let host = &result["interfaces"][0];
        let inside = &result["interfaces"][1];
        assert!(
            host["name"].as_str().unwrap().starts_with("sv-"),
            "{result}"
        );
        assert_eq!(host["mac"].as_str().unwrap().len(), 17, "{result}");
        let host_link = ns.ok(&format!(
            "ip -br link show dev {}",
            host["name"].as_str().unwrap()
        ));
        assert!(
            host_link.contains(host["mac"].as_str().unwrap()),
            "the host end's own MAC: {host_link} {result}"
        );
        assert!(host.get("sandbox").is_none(), "{result}");
        assert_eq!(inside["name"], "eth0");
        assert_eq!(inside["mac"], format!("02:42:0a:58:07:{host_part:02x}"));
        assert_eq!(inside["sandbox"], "/run/netns/c1");
        let ip = &result["ips"][0];
        assert_eq!(ip["address"], format!("10.88.7.{host_part}/24"));
        assert_eq!(ip["gateway"], "10.88.7.1");
        assert_eq!(ip["interface"], 1);
        assert_eq!(ip.get("version").is_some(), version == "0.4.0", "{result}");
        assert_eq!(result["routes"][0]["gw"], "10.88.7.1");
        assert!(result["dns"].is_object());
        let inside_addr = ns.ok("ip -n c1 -br -4 addr show dev eth0");
        assert!(
            inside_addr.contains(&format!("10.88.7.{host_part}/24")),
            "{inside_addr}"
        );
        assert!(
            tcp_ports(&ns).contains("8080 comment \"c1:eth0"),
            "{}",
            tcp_ports(&ns)
        );

        assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
        let newer = version == "1.1.0";
        for command in ["STATUS", "GC"] {
            let answer = call(&ns, command, "c1", &conf);
            if newer {
                assert_eq!(answer.ok(), Value::Null, "{command}");
            } else {
                assert_eq!(answer.error().0, 1, "{command} before 1.1.0");
            }
        }
        // GC without valid-attachments removed the attachment in 1.1.0.
        assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
        assert_nothing_left(&ns);
    }
}

#[test]
fn cni_help_is_help_and_options_given_to_cni_are_refused_making_nothing() {
    let Some(ns) = HostNs::new("cni_help_is_help_and_options_given_to_cni_are_refused") else {
        return;
    };
    for command in [None, Some("ADD")] {
        let run = |args: &[&str]| {
            let mut cmd = ns.supervisor();
            cmd.args(args).env_remove("CNI_COMMAND");
            cmd.envs(command.map(|c| ("CNI_COMMAND", c)));
            common::run(cmd.stdin(Stdio::null()))
        };
        let help = run(&["cni", "--help"]);
        assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
        let text = common::stdout(&help);
        assert!(
            text.contains("Act as a CNI plugin") && text.contains("Usage:"),
            "{text}"
        );
        let other = ns.ok("mktemp -d");
        let refused = run(&["--state-dir", other.trim(), "cni"]);
        assert_eq!(refused.status.code(), Some(125), "{}", stderr(&refused));
        assert_eq!(
            stderr(&refused),
            "supervisor: cni takes no options: its state directory is the network \
             configuration's stateDir, else $SUPERVISOR_STATE_DIR, as every call of the engine \
             finds it\n"
        );
        assert_eq!(common::stdout(&refused), "", "no CNI answer");
        assert_eq!(
            ns.ok(&format!("ls -A {}", other.trim())),
            "",
            "nothing made"
        );
    }
}

#[test]
fn a_bad_environment_is_code_4_naming_the_variable() {
    let Some(ns) = HostNs::new("a_bad_environment_is_code_4_naming_the_variable") else {
        return;
    };
    let conf = conf("1.0.0", json!({}));
    // Without CNI_COMMAND the binary is the plugin only as `supervisor cni`.
    let unset = answer(
        {
            let mut cmd = ns.supervisor();
            cmd.arg("cni").env_remove("CNI_COMMAND");
            cmd
        },
        &conf,
    );
    let (code, msg) = unset.error();
    assert_eq!((code, msg.as_str()), (4, "CNI_COMMAND is not set"));
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("CNI_COMMAND", "")], "CNI_COMMAND"),
        (&[("CNI_COMMAND", "FROB")], "CNI_COMMAND"),
        (
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/x"),
            ],
            "CNI_CONTAINERID",
        ),
        (
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
            ],
            "CNI_NETNS",
        ),
    ];
    for (env, variable) in cases {
        let (code, msg) = plugin(&ns, env, &conf).error();
        assert_eq!(code, 4, "{env:?}: {msg}");
        assert!(msg.contains(variable), "{env:?}: {msg}");
    }
    // Set but empty is told apart from not set.
    for variable in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
        let mut env = vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", "/run/netns/c1"),
        ];
        env.retain(|(k, _)| *k != variable);
        env.push((variable, ""));
        let (code, msg) = plugin(&ns, &env, &conf).error();
        assert_eq!((code, msg), (4, format!("{variable} is empty")));
    }
    let (code, msg) = call(&ns, "ADD", "no-such-netns", &conf).error();
    assert_eq!(code, 4, "{msg}");
    assert!(msg.contains("CNI_NETNS"), "{msg}");
    assert_nothing_left(&ns);
}

#[test]
fn bad_json_is_code_6_a_bad_field_code_7_naming_it_and_an_unknown_version_code_1() {
    let Some(ns) = HostNs::new(
        "bad_json_is_code_6_a_bad_field_code_7_naming_it_and_an_unknown_version_code_1",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    assert_eq!(call(&ns, "ADD", "c1", "{\"cniVersion\":").error().0, 6);
    let (code, msg) = call(
        &ns,
        "ADD",
        "c1",
        &conf("1.0.0", json!({"subnet": "10.88.7.1/24"})),
    )
    .error();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.starts_with("subnet:"), "{msg}");
    let bad_port =
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 0, "containerPort": 80}]}});
    let (code, msg) = call(&ns, "ADD", "c1", &conf("1.0.0", bad_port)).error();
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.starts_with("runtimeConfig.portMappings[0].hostPort:"),
        "{msg}"
    );
    let (code, msg) = call(&ns, "ADD", "c1", &conf("0.2.0", json!({}))).error();
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("0.2.0"), "{msg}");
    // VERSION answers whatever it is asked with.
    let info = call(&ns, "VERSION", "c1", &conf("0.2.0", json!({}))).ok();
    assert_eq!(info["supportedVersions"], json!(VERSIONS));
    assert_nothing_left(&ns);
}

#[test]
fn a_conflist_or_a_config_not_of_type_supervisor_is_code_7_naming_the_key_and_changes_nothing() {
    let Some(ns) = HostNs::new(
        "a_conflist_or_a_config_not_of_type_supervisor_is_code_7_naming_the_key_and_changes_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    // The conflist an engine reads from its directory, given as is: its
    // plugin's bridge and subnet were ignored for every default.
    let conflist = json!({"cniVersion": "1.0.0", "name": "sv", "plugins": [
        {"type": "supervisor", "bridge": "sv9", "subnet": "10.88.7.0/24"}]});
    let mut without_type: Value = serde_json::from_str(&conf("1.0.0", json!({}))).unwrap();
    without_type.as_object_mut().unwrap().remove("type");
    let cases = [
        (conflist.to_string(), "plugins:", "directory"),
        (without_type.to_string(), "type:", "missing"),
        (
            conf("1.0.0", json!({"type": "bridge"})),
            "type:",
            "\"bridge\"",
        ),
    ];
    for command in ["ADD", "CHECK", "DEL"] {
        for (doc, key, why) in &cases {
            let (code, msg) = call(&ns, command, "c1", doc).error();
            assert_eq!(code, 7, "{command} {doc}: {msg}");
            assert!(msg.starts_with(key), "{command} {doc}: {msg}");
            assert!(msg.contains(why), "{command} {doc}: {msg}");
        }
    }
    assert!(
        !ns.ok("ip -br link").contains("sv0"),
        "{}",
        ns.ok("ip -br link")
    );
    assert_nothing_left(&ns);
    // Keys we do not know are ignored, as the reference plugins ignore them.
    let unknown = conf("1.0.0", json!({"isGateway": true, "ipam": {}, "mtu": 1400}));
    call(&ns, "ADD", "c1", &unknown).ok();
    assert_eq!(call(&ns, "DEL", "c1", &unknown).ok(), Value::Null);
    assert_nothing_left(&ns);
}

/// Runs ADD with `CNI_NETNS=netns`.
fn add_into(ns: &HostNs, netns: &str, conf: &str) -> Answer {
    let mut cmd = ns.supervisor();
    cmd.env_remove("SUPERVISOR_STATE_DIR").envs([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "n1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth9"),
    ]);
    answer(cmd, conf)
}

#[test]
fn a_netns_that_is_not_a_containers_network_namespace_is_code_4_and_changes_nothing() {
    let Some(ns) = HostNs::new(
        "a_netns_that_is_not_a_containers_network_namespace_is_code_4_and_changes_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    ns.ok("touch /run/regular && mkdir /run/dir && mkfifo /run/fifo");
    let links = || ns.ok("ip -br link; ip -br addr; ip route; nft list ruleset");
    let before = (held(&ns), links());
    // The plugin's own namespace is the host's: "plumbing" into it would
    // give the host the container's address and default route.
    for netns in [
        "/run/regular",
        "/run/dir",
        "/run/fifo",
        "/proc/self/ns/net",
        "/proc/self/ns/uts",
        // The plugin runs in this test's namespace: PID 1's is the host's.
        "/proc/1/ns/net",
    ] {
        let (code, msg) = add_into(&ns, netns, &conf).error();
        assert_eq!(code, 4, "{netns}: {msg}");
        assert!(msg.contains("CNI_NETNS") && msg.contains(netns), "{msg}");
        assert_eq!(before, (held(&ns), links()), "{netns}");
    }
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn an_oversized_configuration_is_code_6_and_changes_nothing() {
    let Some(ns) = HostNs::new("an_oversized_configuration_is_code_6_and_changes_nothing") else {
        return;
    };
    netns_add(&ns, "c1");
    // Valid but for its size: 16 MB of padding in a field we ignore.
    let huge = conf("1.0.0", json!({"pad": "x".repeat(16 << 20)}));
    let (code, msg) = call(&ns, "ADD", "c1", &huge).error();
    assert_eq!(code, 6, "{msg}");
    assert!(msg.contains("larger than"), "{msg}");
    assert_nothing_left(&ns);
}

#[test]
fn a_del_or_gc_racing_an_add_leaves_the_attachment_whole_or_gone() {
    let Some(ns) = HostNs::new("a_del_or_gc_racing_an_add_leaves_the_attachment_whole_or_gone")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.1.0", publishing(8080, 8000));
    let gc = self::conf("1.1.0", json!({"cni.dev/valid-attachments": []}));
    for round in 0..12 {
        let mut add = std::thread::scope(|scope| {
            let add = scope.spawn(|| call(&ns, "ADD", "c1", &conf));
            // DEL and GC as fast as they go until ADD has answered.
            while !add.is_finished() {
                if round % 2 == 0 {
                    call(&ns, "DEL", "c1", &conf).ok();
                } else {
                    plugin(&ns, &[("CNI_COMMAND", "GC")], &gc).ok();
                }
            }
            add.join().expect("ADD thread")
        });
        add.stderr.clear();
        let (records, leases, ports) = (records(&ns), leases(&ns), tcp_ports(&ns));
        let state = format!(
            "round {round}: {add:?}\nrecords {records:?} leases {leases:?} ports {ports:?}"
        );
        assert_eq!(records.is_empty(), ports.is_empty(), "{state}");
        if records.is_empty() {
            // A DEL gives the address back once it has forgotten the
            // connections, in the background.
            eventually(&state, Duration::from_secs(10), || {
                common::leases(&ns).is_empty().then_some(())
            });
        } else {
            assert!(!leases.is_empty(), "{state}");
        }
        call(&ns, "DEL", "c1", &conf).ok();
    }
    assert_nothing_left(&ns);
}

#[test]
fn an_add_whose_id_another_attachment_has_is_refused_and_leaves_its_link_alone() {
    let Some(ns) =
        HostNs::new("an_add_whose_id_another_attachment_has_is_refused_and_leaves_its_link_alone")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    // A hash collision, made by hand: c1:eth0's record becomes zz:eth0's,
    // keeping the id (and so the host veth) c1:eth0 hashes to.
    ns.ok(
        "cd /run/supervisor/containers && sed 's/c1:eth0/zz:eth0/g; s/\"c1\"/\"zz\"/g' \
         c1:eth0.json > zz:eth0.json && rm c1:eth0.json && \
         cd /run/supervisor/ids/* && mv c1:eth0 zz:eth0",
    );
    // Another record that tells when it is opened: its writer's open
    // returns then. Whose the link is is asked of the id's markers alone.
    ns.ok(
        "mkfifo /run/supervisor/containers/stuck:eth0.json && \
         { (exec 3>/run/supervisor/containers/stuck:eth0.json; touch /run/opened) >/dev/null 2>&1 </dev/null & }",
    );
    let veths = container_veths(&ns);
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(code, 110, "{msg}");
    assert!(msg.contains("zz:eth0"), "{msg}");
    assert_eq!(veths, container_veths(&ns));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        ns.ok("ls /run/opened 2>/dev/null || true"),
        "",
        "another record was opened"
    );
    ns.ok("timeout 5 cat /run/supervisor/containers/stuck:eth0.json; rm /run/supervisor/containers/stuck:eth0.json");
    assert_eq!(records(&ns).trim(), "zz:eth0.json");
}

/// A configuration as full of distinct port mappings as its 4 MiB allow
/// (about 100,000, each on both families): each was checked against every
/// one before it, 15 s of a real-time ADD on an optimized build, and as
/// long again for DEL, which checks the same configuration.
#[test]
fn the_most_port_mappings_a_configuration_holds_are_answered_for_add_and_del_without_hanging() {
    let Some(ns) = HostNs::new(
        "the_most_port_mappings_a_configuration_holds_are_answered_for_add_and_del_without_hanging",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let limit = 4 << 20;
    let mut mappings = Vec::new();
    let mut size = conf(
        "1.0.0",
        json!({"ipv6": true, "runtimeConfig": {"portMappings": []}}),
    )
    .len();
    'full: for protocol in ["tcp", "udp"] {
        for port in 1..=u16::MAX {
            let mapping = json!({"hostPort": port, "containerPort": 80, "protocol": protocol});
            size += mapping.to_string().len() + 1;
            if size > limit {
                break 'full;
            }
            mappings.push(mapping);
        }
    }
    assert!(mappings.len() > 65_535, "{}", mappings.len());
    let full = conf(
        "1.0.0",
        json!({"ipv6": true, "runtimeConfig": {"portMappings": mappings}}),
    );
    assert!(full.len() <= limit, "{}", full.len());
    // More sockets than the open files allowed: refused, naming the limit.
    // The plugin's limit is set here, at or below any machine's (lowering
    // needs no privilege): under the machine's own, 524,288 under systemd,
    // ADD would bind them all.
    let mut add = ns.supervisor();
    add.envs([
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]);
    // SAFETY: setrlimit() is async-signal-safe; the child execs right after.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut add, || {
            let limit = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let (code, msg) = answer(add, &full).error();
    assert_eq!(code, 110, "{msg}");
    assert!(msg.contains("open files"), "{msg}");
    assert!(msg.contains("the limit is 1024"), "{msg}");
    assert_eq!(call(&ns, "DEL", "c1", &full).ok(), Value::Null);
    assert_nothing_left(&ns);
}

#[test]
fn a_second_add_for_the_same_container_and_interface_is_refused_and_changes_nothing() {
    let Some(ns) = HostNs::new(
        "a_second_add_for_the_same_container_and_interface_is_refused_and_changes_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    let before = held(&ns);
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(code, 101, "{msg}");
    assert!(msg.contains("c1") && msg.contains("eth0"), "{msg}");
    assert_eq!(before, held(&ns));
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn an_add_right_after_a_del_of_the_same_container_and_interface_succeeds() {
    let Some(ns) =
        HostNs::new("an_add_right_after_a_del_of_the_same_container_and_interface_succeeds")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    for _ in 0..3 {
        // As `podman restart` does: DEL, then ADD at once, same netns.
        call(&ns, "ADD", "c1", &conf).ok();
        call(&ns, "DEL", "c1", &conf).ok();
    }
    // A link of its name nobody holds (a crashed ADD's, or a DEL's still
    // being deleted) is taken out of the way.
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let veth = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    call(&ns, "DEL", "c1", &conf).ok();
    common::wait_for_no_veth(&ns);
    ns.ok(&format!("ip link add {veth} type veth peer name left0"));
    call(&ns, "ADD", "c1", &conf).ok();
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

/// `command` for container `id` as `call` does, with debug logs on.
fn call_logged(ns: &HostNs, command: &str, id: &str, conf: &str) -> Answer {
    let netns = format!("/run/netns/{id}");
    let debug = [("RUST_LOG", "supervisor=debug")];
    call_with(ns, command, id, &netns, "eth0", conf, &debug)
}

#[test]
fn a_successful_add_leaves_no_work_for_after_its_answer_and_a_del_does() {
    let Some(ns) =
        HostNs::new("a_successful_add_leaves_no_work_for_after_its_answer_and_a_del_does")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    // The engine waits for the plugin's exit: work after the answer is a
    // forked child whose fork it waits for too. ADD's one slow close (the
    // procfs instance of its sysctls) goes with the netfilter socket's
    // holder instead, which needs no fork.
    let added = call_logged(&ns, "ADD", "c1", &conf);
    assert!(
        !added.stderr.contains("after the answer: "),
        "{}",
        added.stderr
    );
    added.ok();
    // DEL has its veth, connections and lease to see to after answering.
    let deleted = call_logged(&ns, "DEL", "c1", &conf);
    assert!(
        deleted.stderr.contains("after the answer: 1 links"),
        "{}",
        deleted.stderr
    );
    deleted.ok();
    assert_nothing_left(&ns);
}

/// `net.ipv6.conf.IFNAME.NAME` in netns `netns`.
fn ipv6_conf(ns: &HostNs, netns: &str, ifname: &str, name: &str) -> String {
    ns.ok(&format!(
        "ip netns exec {netns} cat /proc/sys/net/ipv6/conf/{ifname}/{name}"
    ))
    .trim()
    .to_string()
}

/// The IPv6 defaults of netns `netns` a container's interface is born
/// with, as `name=value`.
fn ipv6_defaults(ns: &HostNs, netns: &str) -> Vec<String> {
    ["disable_ipv6", "accept_ra", "autoconf", "accept_dad"]
        .iter()
        .map(|name| format!("{name}={}", ipv6_conf(ns, netns, "default", name)))
        .collect()
}

#[test]
fn add_leaves_the_engines_ipv6_defaults_as_they_were_and_its_interface_configured_as_asked() {
    let Some(ns) = HostNs::new("add_leaves_the_engines_ipv6_defaults_as_they_were") else {
        return;
    };
    // IPv4 only, into kernel defaults: eth0 has IPv6 off and no IPv6
    // address, though the plugin sets `default.disable_ipv6` for its birth.
    netns_add(&ns, "c1");
    let before = ipv6_defaults(&ns, "c1");
    call(&ns, "ADD", "c1", &conf("1.0.0", json!({}))).ok();
    assert_eq!(ipv6_conf(&ns, "c1", "eth0", "disable_ipv6"), "1");
    let addrs = ns.ok("ip -n c1 -6 addr show dev eth0");
    assert!(addrs.trim().is_empty(), "an IPv6 address on eth0: {addrs}");
    assert_eq!(ipv6_defaults(&ns, "c1"), before);
    // Not only read back: an interface the engine makes next has them.
    ns.ok("ip -n c1 link add x0 type veth peer name x1");
    assert_eq!(ipv6_conf(&ns, "c1", "x0", "disable_ipv6"), "0");
    call(&ns, "DEL", "c1", &conf("1.0.0", json!({}))).ok();
    // Dual stack, into an engine's own defaults (IPv6 off, DAD strict):
    // eth0 is on without router advertisements, SLAAC or DAD; the
    // defaults stay the engine's.
    netns_add(&ns, "c2");
    for (name, value) in [("disable_ipv6", 1), ("accept_dad", 2)] {
        ns.ok(&format!(
            "ip netns exec c2 sysctl -qw net.ipv6.conf.default.{name}={value}"
        ));
    }
    let before = ipv6_defaults(&ns, "c2");
    let conf = conf("1.0.0", dual(json!({})));
    call(&ns, "ADD", "c2", &conf).ok();
    let eth0: Vec<String> = ["disable_ipv6", "accept_ra", "autoconf", "accept_dad"]
        .iter()
        .map(|name| ipv6_conf(&ns, "c2", "eth0", name))
        .collect();
    assert_eq!(eth0, ["0", "0", "0", "0"]);
    let addrs = ns.ok("ip -n c2 -6 -o addr show dev eth0 scope global");
    assert!(addrs.contains("fd00:7::"), "{addrs}");
    assert!(!addrs.contains("tentative"), "{addrs}");
    assert_eq!(ipv6_defaults(&ns, "c2"), before);
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
}

/// `command` for container `id` as `ifname` in netns `netns`, with
/// `extra` variables, started in the background, its stdin not yet
/// written.
fn spawn_plugin(
    ns: &HostNs,
    command: &str,
    (id, netns, ifname): (&str, &str, &str),
    extra: &[(&str, &str)],
) -> Child {
    let mut cmd = ns.supervisor();
    cmd.env_remove("SUPERVISOR_STATE_DIR").envs([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", "/usr/lib/cni"),
    ]);
    cmd.envs(extra.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the plugin")
}

/// Writes `conf` on `child`'s stdin, and closes it.
fn feed(child: &mut Child, conf: &str) {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(conf.as_bytes())
        .expect("write the configuration");
}

/// ADD for container `id` as `ifname` in netns `netns`, started in the
/// background with the fault hook at `point` (see src/milestones.rs).
fn add_paused(ns: &HostNs, id: &str, netns: &str, ifname: &str, conf: &str, point: &str) -> Child {
    let hook = [("SUPERVISOR_TEST_PAUSE_AT", point)];
    let mut child = spawn_plugin(ns, "ADD", (id, netns, ifname), &hook);
    feed(&mut child, conf);
    child
}

/// Whether `child` stops itself (at its fault point) within `wait`.
fn stops(child: &mut Child, wait: Duration) -> bool {
    let started = std::time::Instant::now();
    loop {
        if common::process_state(child.id()) == Some('T') {
            return true;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the plugin exited with {status} before stopping");
        }
        if started.elapsed() > wait {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Lets the stopped `child` go on and waits for its answer (see
/// `answer_of`).
fn resume(mut child: Child) -> Result<String, String> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let started = std::time::Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the plugin hung"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    answer_of(child)
}

/// `child`'s answer: its stdout (and stderr), Ok on success.
fn answer_of(child: Child) -> Result<String, String> {
    let out = child.wait_with_output().expect("wait for the plugin");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A second network, of a state directory of its own, dual stack.
fn other_network() -> String {
    conf(
        "1.0.0",
        dual(json!({
            "name": "net2",
            "bridge": "sv1",
            "subnet": "10.88.8.0/24",
            "stateDir": "/run/supervisor-b",
        })),
    )
}

#[test]
fn two_lenders_of_one_namespaces_ipv6_defaults_take_turns_whatever_their_state_directories() {
    let Some(ns) = HostNs::new("two_lenders_of_one_namespaces_ipv6_defaults_take_turns") else {
        return;
    };
    netns_add(&ns, "c1");
    let before = ipv6_defaults(&ns, "c1");
    // IPv4 only lends disable_ipv6=1; dual stack lends 0 and the rest.
    let mut first = add_paused(
        &ns,
        "c1",
        "/run/netns/c1",
        "eth0",
        &conf("1.0.0", json!({})),
        "lent",
    );
    assert!(
        stops(&mut first, Duration::from_secs(30)),
        "the first never lent"
    );
    assert_ne!(ipv6_defaults(&ns, "c1"), before, "the first lent nothing");
    let mut second = add_paused(&ns, "c1", "/run/netns/c1", "eth1", &other_network(), "lent");
    // Lending meanwhile, it would take the first's lent values for the
    // engine's, and give them back last. Which comes first: its stop at
    // its lend, or its wait for the lock on the namespace's inode (a
    // waiter's line in /proc/locks has `->`: `1: -> FLOCK ADVISORY WRITE
    // PID DEV:INODE ...`).
    let inode = format!(":{}", ns.ok("stat -L -c %i /run/netns/c1").trim());
    let pid = second.id().to_string();
    let overlapped = eventually(
        "the second lending or waiting for the first",
        Duration::from_secs(30),
        || {
            if common::process_state(second.id()) == Some('T') {
                return Some(true);
            }
            let locks = std::fs::read_to_string("/proc/locks").expect("read /proc/locks");
            let waits = locks.lines().any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                fields.get(1) == Some(&"->")
                    && fields.get(5) == Some(&pid.as_str())
                    && fields.get(6).is_some_and(|at| at.ends_with(&inode))
            });
            waits.then_some(false)
        },
    );
    resume(first).unwrap();
    assert!(
        stops(&mut second, Duration::from_secs(30)),
        "the second never lent"
    );
    // Its default route meets the first's: it fails once its eth1 is made
    // and the defaults are given back.
    let err = resume(second).unwrap_err();
    assert!(
        err.contains("adding default route via 10.88.8.1: File exists"),
        "{err}"
    );
    assert_eq!(ipv6_defaults(&ns, "c1"), before, "overlapped: {overlapped}");
    assert!(!overlapped, "the second lent while the first had lent");
    assert_eq!(
        ns.ok("ls /run/supervisor-lent"),
        "",
        "a lend left written down"
    );
}

#[test]
fn a_lender_killed_after_lending_is_undone_by_the_next_add_in_its_namespace() {
    let Some(ns) = HostNs::new("a_lender_killed_after_lending_is_undone_by_the_next_add") else {
        return;
    };
    netns_add(&ns, "c1");
    // The engine's own defaults, to be told from the kernel's.
    ns.ok("ip netns exec c1 sysctl -qw net.ipv6.conf.default.accept_dad=2");
    let before = ipv6_defaults(&ns, "c1");
    let mut killed = add_paused(&ns, "c1", "/run/netns/c1", "eth1", &other_network(), "lent");
    assert!(stops(&mut killed, Duration::from_secs(30)), "it never lent");
    killed.kill().expect("SIGKILL the plugin");
    killed.wait().expect("reap the plugin");
    let left = ipv6_defaults(&ns, "c1");
    assert_ne!(left, before, "it lent nothing");
    // Another state directory's ADD, of another container's interface.
    call(&ns, "ADD", "c1", &conf("1.0.0", json!({}))).ok();
    assert_eq!(ipv6_defaults(&ns, "c1"), before, "left: {left:?}");
    assert_eq!(ns.ok("ls /run/supervisor-lent"), "", "the record stayed");
    call(&ns, "DEL", "c1", &conf("1.0.0", json!({}))).ok();
}

#[test]
fn a_lender_killed_after_lending_is_undone_by_a_check_or_del_in_its_namespace() {
    let Some(ns) = HostNs::new("a_lender_killed_after_lending_is_undone_by_a_check_or_del") else {
        return;
    };
    netns_add(&ns, "c1");
    ns.ok("ip netns exec c1 sysctl -qw net.ipv6.conf.default.accept_dad=2");
    let before = ipv6_defaults(&ns, "c1");
    // Its own DEL, as an engine sends after a failed ADD; a CHECK of it.
    for (command, ifname) in [("CHECK", "eth1"), ("DEL", "eth2")] {
        let netns = "/run/netns/c1";
        let mut killed = add_paused(&ns, "c1", netns, ifname, &other_network(), "lent");
        assert!(stops(&mut killed, Duration::from_secs(30)), "it never lent");
        killed.kill().expect("SIGKILL the plugin");
        killed.wait().expect("reap the plugin");
        let left = ipv6_defaults(&ns, "c1");
        assert_ne!(left, before, "it lent nothing");
        let _ = call_into(&ns, command, "c1", netns, ifname, &other_network());
        assert_eq!(ipv6_defaults(&ns, "c1"), before, "{command}: left {left:?}");
        assert_eq!(
            ns.ok("ls /run/supervisor-lent"),
            "",
            "{command}: the record stayed"
        );
    }
    for ifname in ["eth1", "eth2"] {
        call_into(&ns, "DEL", "c1", "/run/netns/c1", ifname, &other_network()).ok();
    }
}

#[test]
fn an_attachments_neighbour_entry_is_exempt_from_the_table_limit_and_goes_with_its_del() {
    let Some(ns) = HostNs::new("an_attachments_neighbour_entry_is_exempt_from_the_table_limit")
    else {
        return;
    };
    // A bystander keeps the bridge's carrier: the kernel flushes the
    // bridge's entries, ours too, when its last port goes.
    netns_add(&ns, "c0");
    let plain = conf("1.0.0", json!({}));
    call(&ns, "ADD", "c0", &plain).ok();
    // DEL gives the address back at once without published ports, after
    // the answer with them (see cni::forget): the entry goes before it in
    // both.
    for (id, extra) in [("c1", json!({})), ("c2", publishing(8080, 8000))] {
        netns_add(&ns, id);
        let conf = conf("1.0.0", extra);
        let result = call(&ns, "ADD", id, &conf).ok();
        let address = result["ips"][0]["address"].as_str().unwrap();
        let address = address.split('/').next().unwrap().to_string();
        let entry = neighbour_entries(&ns, &address);
        assert!(entry.contains("extern_learn"), "{entry}");
        call(&ns, "DEL", id, &conf).ok();
        eventually("the entry gone", Duration::from_secs(10), || {
            neighbour_entries(&ns, &address).is_empty().then_some(())
        });
    }
    call(&ns, "DEL", "c0", &plain).ok();
    assert_nothing_left(&ns);
}

/// The host's conntrack entries whose replies come from `ip`.
fn entries_from(ns: &HostNs, ip: &str) -> String {
    ns.ok(&format!(
        "conntrack -L 2>/dev/null | grep -F 'src={ip} ' || true"
    ))
}

#[test]
fn del_answers_before_forgetting_connections_and_gives_the_address_back_only_after() {
    let Some(ns) = HostNs::new(
        "del_answers_before_forgetting_connections_and_gives_the_address_back_only_after",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = conf("1.0.0", publishing(8080, 8000));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let ip = result["ips"][0]["address"].as_str().unwrap();
    let ip = ip.split('/').next().unwrap().to_string();
    let mut server = serve(&ns, "c1", 8000, "hello-from-c1");
    reaches(
        "the port from the host's 127.0.0.1",
        || {
            String::from_utf8_lossy(&ns.sh("busybox nc -w 2 127.0.0.1 8080 </dev/null").stdout)
                .into_owned()
        },
        "hello-from-c1",
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_ne!(entries_from(&ns, &ip), "", "no conntrack entry to forget");

    // The forgetting process stops itself before it starts: DEL has
    // answered, the entries are still there, and so is the lease.
    let answer = del_paused(&ns, "c1", &conf, "forgetting");
    assert_eq!(answer.ok(), Value::Null);
    assert_eq!(records(&ns), "");
    assert_ne!(entries_from(&ns, &ip), "");
    let pid = stopped_holder(&ns, &ip);
    // Meanwhile the address is nobody else's.
    let other = call(&ns, "ADD", "c2", &conf.replace("8080", "8081")).ok();
    assert_ne!(
        other["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next(),
        Some(ip.as_str())
    );

    ns.ok(&format!("kill -CONT {pid}"));
    eventually("the address given back", Duration::from_secs(10), || {
        (!leases(&ns).lines().any(|l| l == ip)).then_some(())
    });
    assert_eq!(entries_from(&ns, &ip), "", "entries left for {ip}");
    call(&ns, "DEL", "c2", &conf.replace("8080", "8081")).ok();
    assert_nothing_left(&ns);
}

/// The process that holds the lease of `ip` (a DEL's work after its
/// answer, handed the lease), once it has stopped itself at a fault point.
fn stopped_holder(ns: &HostNs, ip: &str) -> String {
    eventually(
        "the lease's holder stopped",
        Duration::from_secs(10),
        || {
            let lease = ns.ok(&format!("cat /run/supervisor/leases/sv0/{ip}"));
            let pid = lease
                .lines()
                .find_map(|l| l.strip_prefix("pid="))
                .expect("the lease names its holder");
            // 0 while the lease is still the engine's, before its hand-over.
            (pid != "0"
                && ns
                    .ok(&format!("cat /proc/{pid}/stat 2>/dev/null || true"))
                    .split_whitespace()
                    .nth(2)
                    .is_some_and(|state| state == "T"))
            .then(|| pid.to_string())
        },
    )
}

/// DEL of container `id` (in netns `id`, as eth0), its work after the
/// answer stopping itself at fault point `point`.
fn del_paused(ns: &HostNs, id: &str, conf: &str, point: &str) -> Answer {
    let netns = format!("/run/netns/{id}");
    plugin(
        ns,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
            ("SUPERVISOR_TEST_PAUSE_AT", point),
        ],
        conf,
    )
}

#[test]
fn del_without_ports_deletes_the_veth_before_giving_back_its_address() {
    let Some(ns) = HostNs::new("del_without_ports_deletes_the_veth_before_giving_back_its_address")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let ip = result["ips"][0]["address"].as_str().unwrap();
    let ip = ip.split('/').next().unwrap().to_string();
    assert_eq!(container_veths(&ns).len(), 1);

    assert_eq!(del_paused(&ns, "c1", &conf, "unlinked").ok(), Value::Null);
    let pid = stopped_holder(&ns, &ip);
    // The veth is gone and only then is the address free: no one gets it
    // while the old veth, with the MAC derived from it, is on the bridge.
    assert_eq!(container_veths(&ns), Vec::<String>::new());
    assert!(leases(&ns).lines().any(|l| l == ip), "{}", leases(&ns));

    ns.ok(&format!("kill -CONT {pid}"));
    eventually("the address given back", Duration::from_secs(10), || {
        (!leases(&ns).lines().any(|l| l == ip)).then_some(())
    });
    assert_nothing_left(&ns);
}

/// Releasing a netfilter socket holds nf_tables' commit lock for a grace
/// period, and a veth's creation takes that lock with RTNL held: an ADD
/// meeting a release waits 10-30 ms. So the sockets of ADDs (their
/// holders) and DELs (the work they leave for after the answer) are all
/// released together on the close tick, never one by one as their work
/// ends: here the DELs' work is done (their addresses given back), and
/// every socket of the round is still open until the tick.
#[test]
fn back_to_back_adds_and_dels_release_their_netfilter_sockets_together_on_the_close_tick() {
    let Some(ns) = HostNs::new(
        "back_to_back_adds_and_dels_release_their_netfilter_sockets_together_on_the_close_tick",
    ) else {
        return;
    };
    let pairs = 3;
    for i in 0..pairs {
        netns_add(&ns, &format!("c{i}"));
    }
    let tick = supervisor::nftables::CLOSE_TICK;
    // The bridge and the tables, made once.
    let conf0 = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c0", &conf0).ok();
    call(&ns, "DEL", "c0", &conf0).ok();
    let open = common::within_a_close_tick(&ns, || {
        for i in 0..pairs {
            let conf = conf("1.0.0", publishing(9000 + i as u16, 8000));
            call(&ns, "ADD", &format!("c{i}"), &conf).ok();
            call(&ns, "DEL", &format!("c{i}"), &conf).ok();
        }
        eventually("the addresses given back", tick * 3, || {
            leases(&ns).is_empty().then_some(())
        });
        netfilter_sockets(&ns)
    });
    assert_eq!(
        open,
        2 * pairs,
        "one socket per ADD and per DEL open until the tick"
    );
    eventually("the sockets released at the tick", tick * 3, || {
        (netfilter_sockets(&ns) == 0).then_some(())
    });
    assert_nothing_left(&ns);
}

/// The scheduling policy of process `pid` (SCHED_OTHER, SCHED_FIFO, ...).
fn policy_of(pid: &str) -> libc::c_int {
    let pid: libc::pid_t = pid.parse().expect("a pid");
    // SAFETY: sched_getscheduler only reads another process's policy.
    unsafe { libc::sched_getscheduler(pid) }
}

#[test]
fn add_and_del_run_real_time_and_the_work_del_leaves_for_after_its_answer_ordinary() {
    let Some(ns) = HostNs::new(
        "add_and_del_run_real_time_and_the_work_del_leaves_for_after_its_answer_ordinary",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    let mut add = add_paused(&ns, "c1", "/run/netns/c1", "eth0", &conf, "lent");
    assert!(stops(&mut add, Duration::from_secs(10)), "ADD stopping");
    assert_eq!(
        policy_of(&add.id().to_string()) & !libc::SCHED_RESET_ON_FORK,
        libc::SCHED_FIFO
    );
    let result: Value = serde_json::from_str(resume(add).unwrap().lines().next().unwrap()).unwrap();
    let ip = result["ips"][0]["address"].as_str().unwrap();
    let ip = ip.split('/').next().unwrap().to_string();
    // The veth's removal and the conntrack walk: nobody waits for them,
    // and they are not bounded as ADD's and DEL's own work is.
    assert_eq!(del_paused(&ns, "c1", &conf, "forgetting").ok(), Value::Null);
    let pid = stopped_holder(&ns, &ip);
    assert_eq!(policy_of(&pid), libc::SCHED_OTHER);
    ns.ok(&format!("kill -CONT {pid}"));
    assert_nothing_left(&ns);
}

/// `command` for container c1, started with its configuration not yet
/// written, once it waits for it (reading stdin).
fn waiting_for_its_configuration(ns: &HostNs, command: &str) -> Child {
    let child = spawn_plugin(ns, command, ("c1", "/run/netns/c1", "eth0"), &[]);
    // read(2) (syscall 0) on fd 0.
    let syscall = format!("/proc/{}/syscall", child.id());
    eventually("the plugin reading stdin", Duration::from_secs(10), || {
        let now = std::fs::read_to_string(&syscall).unwrap_or_default();
        now.starts_with("0 0x0 ").then_some(())
    });
    child
}

/// Writes `conf` on `child`'s stdin and waits for its answer.
fn configured(mut child: Child, conf: &str) -> Result<String, String> {
    feed(&mut child, conf);
    answer_of(child)
}

#[test]
fn add_and_del_are_real_time_while_they_read_and_decode_their_configuration() {
    let Some(ns) =
        HostNs::new("add_and_del_are_real_time_while_they_read_and_decode_their_configuration")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    for command in ["ADD", "DEL"] {
        let child = waiting_for_its_configuration(&ns, command);
        assert_eq!(
            policy_of(&child.id().to_string()) & !libc::SCHED_RESET_ON_FORK,
            libc::SCHED_FIFO,
            "{command}"
        );
        configured(child, &conf).unwrap();
    }
    // What the engine does not wait for is not real-time: a CHECK.
    let child = waiting_for_its_configuration(&ns, "CHECK");
    assert_eq!(policy_of(&child.id().to_string()), libc::SCHED_OTHER);
    configured(child, &conf).unwrap_err();
    assert_nothing_left(&ns);
}

#[test]
fn a_del_forgets_its_connections_out_so_a_peer_sending_again_never_reaches_the_next_holder() {
    let Some(ns) = HostNs::new(
        "a_del_forgets_its_connections_out_so_a_peer_sending_again_never_reaches_the_next_holder",
    ) else {
        return;
    };
    let outside = ns.outside();
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    // One container address: the next ADD gets the one given back.
    let conf = conf("1.0.0", json!({"subnet": "10.88.7.0/30"}));
    call(&ns, "ADD", "c1", &conf).ok();
    // c1's flow out, masqueraded to the host's 192.0.2.1:4000.
    ns.ok("echo out | ip netns exec c1 nc -u -w 1 -p 4000 192.0.2.2 5000");
    assert_ne!(
        flows_out_of(&ns, "10.88.7.2"),
        "",
        "no entry of c1's flow out"
    );
    call(&ns, "DEL", "c1", &conf).ok();
    eventually("the address given back", Duration::from_secs(10), || {
        leases(&ns).is_empty().then_some(())
    });
    let result = call(&ns, "ADD", "c2", &conf).ok();
    assert_eq!(result["ips"][0]["address"], "10.88.7.2/30");
    // c2 listens on the port c1 sent from; the first datagram it gets
    // decides whose it takes (nc -u -l keeps to its sender).
    ns.ok(
        "ip netns exec c2 timeout 20 nc -u -l 4000 >/run/got 2>&1 </dev/null & \
         for i in $(seq 100); do \
           ip netns exec c2 grep -q ':0FA0 ' /proc/net/udp && exit 0; sleep 0.05; done; exit 1",
    );
    // The peer sends again to where c1's flow was masqueraded.
    for _ in 0..3 {
        outside.ok("echo secret-for-c1 | nc -u -w 1 -p 5000 192.0.2.1 4000 || true");
    }
    ns.ok("echo from-the-host | nc -u -w 1 10.88.7.2 4000 || true");
    let got = eventually("c2 getting a datagram", Duration::from_secs(10), || {
        let got = ns.ok("cat /run/got");
        (!got.is_empty()).then_some(got)
    });
    assert!(!got.contains("secret-for-c1"), "c2 got c1's reply: {got}");
    assert!(got.contains("from-the-host"), "{got}");
    call(&ns, "DEL", "c2", &conf).ok();
    assert_nothing_left(&ns);
}

/// The host's conntrack entries of connections from `ip`.
fn flows_out_of(ns: &HostNs, ip: &str) -> String {
    ns.ok(&format!(
        "conntrack -L 2>/dev/null | grep -F 'src={ip} ' || true"
    ))
}

#[test]
fn del_of_an_unknown_container_succeeds() {
    let Some(ns) = HostNs::new("del_of_an_unknown_container_succeeds") else {
        return;
    };
    let conf = conf("1.1.0", json!({}));
    let answer = plugin(
        &ns,
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "nobody"),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf,
    );
    assert_eq!(answer.ok(), Value::Null);
}

#[test]
fn del_and_check_of_an_unknown_attachment_read_no_other_record() {
    let Some(ns) = HostNs::new("del_and_check_of_an_unknown_attachment_read_no_other_record")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    // Another record whose read never ends: one that reads it (as every
    // other record, to cost DEL a read per attachment) hangs on it.
    ns.ok("mkfifo /run/supervisor/containers/stuck:eth0.json");
    assert_eq!(call(&ns, "DEL", "nobody", &conf).ok(), Value::Null);
    let (code, msg) = call(&ns, "CHECK", "nobody", &conf).error();
    assert_eq!(code, 103, "{msg}");
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
    ns.ok("rm /run/supervisor/containers/stuck:eth0.json");
    assert_nothing_left(&ns);
}

/// A plugin started with stdout closed (a shell's `>&-`) has /dev/null
/// there: a closed standard descriptor is opened on /dev/null before
/// anything else is opened, else the first file or socket the process
/// opens takes its number, and what is meant for stdout goes into it.
#[test]
fn a_plugin_started_with_stdout_closed_has_dev_null_there_not_a_file_of_its_own() {
    use std::os::unix::process::CommandExt;
    let Some(ns) = HostNs::new("plugin_started_with_stdout_closed") else {
        return;
    };
    netns_add(&ns, "c1");
    let mut cmd = ns.supervisor();
    cmd.env_remove("SUPERVISOR_STATE_DIR")
        .envs([
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
            ("SUPERVISOR_TEST_PAUSE_AT", "lent"),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: close() is async-signal-safe; the child execs right after.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(1);
            Ok(())
        })
    };
    let conf = conf("1.0.0", json!({}));
    let mut child = cmd.spawn().expect("spawn the plugin");
    feed(&mut child, &conf);
    assert!(stops(&mut child, Duration::from_secs(10)), "no pause");
    let stdout = std::fs::read_link(format!("/proc/{}/fd/1", child.id()));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
    let out = child.wait_with_output().expect("wait for the plugin");
    assert_eq!(
        stdout.ok(),
        Some(std::path::PathBuf::from("/dev/null")),
        "stdout"
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

/// A plugin started with stderr closed and no descriptor left for
/// /dev/null (RLIMIT_NOFILE 2, below the three standard ones: poll fails
/// with EINVAL, each descriptor is asked in turn) exits 125 at once,
/// printing nothing, instead of carrying on with a closed stderr whose
/// number the first file it opens would take.
#[test]
fn a_plugin_whose_closed_stderr_cannot_be_opened_on_dev_null_exits_125_printing_nothing() {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(common::SUPERVISOR);
    cmd.env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: close() and setrlimit() are async-signal-safe; the child
    // execs right after.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(2);
            let two = libc::rlimit {
                rlim_cur: 2,
                rlim_max: 2,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &two) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    };
    let out = cmd.output().expect("run the plugin");
    assert_eq!(out.status.code(), Some(125), "{:?}", out);
    assert_eq!(common::stdout(&out), "");
}

#[test]
fn del_after_the_netns_is_gone_succeeds_and_cleans_up_everything() {
    let Some(ns) = HostNs::new("del_after_the_netns_is_gone_succeeds_and_cleans_up_everything")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    ns.ok("ip netns del c1");
    assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
    eventually(
        "the veth gone with its netns",
        Duration::from_secs(10),
        || container_veths(&ns).is_empty().then_some(()),
    );
    assert_nothing_left(&ns);
    // And again: DEL is idempotent.
    assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
}

#[test]
fn check_after_the_host_veth_was_deleted_names_the_link() {
    let Some(ns) = HostNs::new("check_after_the_host_veth_was_deleted_names_the_link") else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    let veth = result["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    ns.ok(&format!("ip link del {veth}"));
    let (code, msg) = call(&ns, "CHECK", "c1", &conf).error();
    assert_eq!(code, 104, "{msg}");
    assert!(msg.contains(&format!("link {veth}")), "{msg}");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
    let (code, _) = call(&ns, "CHECK", "c1", &conf).error();
    assert_eq!(code, 103, "CHECK of no attachment");
}

#[test]
fn check_after_a_published_element_was_deleted_names_it_and_another_attachments_do_not_count() {
    let Some(ns) = HostNs::new("check_after_a_published_element_was_deleted_names_it") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf1 = conf("1.0.0", publishing(8080, 8000));
    let conf2 = conf("1.0.0", publishing(8081, 8000));
    call(&ns, "ADD", "c1", &conf1).ok();
    call(&ns, "ADD", "c2", &conf2).ok();
    assert_eq!(call(&ns, "CHECK", "c1", &conf1).ok(), Value::Null);
    ns.ok("nft delete element ip supervisor tcp_ports '{ 8080 }'");
    let (code, msg) = call(&ns, "CHECK", "c1", &conf1).error();
    assert_eq!(code, 104, "{msg}");
    assert!(
        msg.contains("element 8080 : 10.88.7.2 . 8000") && msg.contains("tcp_ports"),
        "{msg}"
    );
    assert_eq!(call(&ns, "CHECK", "c2", &conf2).ok(), Value::Null);
    call(&ns, "DEL", "c1", &conf1).ok();
    call(&ns, "DEL", "c2", &conf2).ok();
    assert_nothing_left(&ns);
}

#[test]
fn gc_removes_every_attachment_not_in_valid_attachments() {
    let Some(ns) = HostNs::new("gc_removes_every_attachment_not_in_valid_attachments") else {
        return;
    };
    for (id, port) in [("c1", 8081), ("c2", 8082), ("c3", 8083)] {
        netns_add(&ns, id);
        call(&ns, "ADD", id, &conf("1.1.0", publishing(port, 80))).ok();
    }
    let gc = conf(
        "1.1.0",
        json!({"cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]}),
    );
    assert_eq!(call(&ns, "GC", "", &gc).ok(), Value::Null);
    assert_eq!(records(&ns).trim(), "c2:eth0.json");
    let ports = tcp_ports(&ns);
    assert!(
        ports.contains("8082") && !ports.contains("8081") && !ports.contains("8083"),
        "{ports}"
    );
    // Links and addresses go after the answer (src/cni/forget.rs).
    eventually("only c2's lease and veth", Duration::from_secs(10), || {
        (leases(&ns).trim() == "10.88.7.3" && container_veths(&ns).len() == 1).then_some(())
    });
    // Another network's attachments are not this GC's.
    let other = conf("1.1.0", json!({"name": "net2"}));
    assert_eq!(call(&ns, "GC", "", &other).ok(), Value::Null);
    assert_eq!(records(&ns).trim(), "c2:eth0.json");
    call(&ns, "DEL", "c2", &gc).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_port_a_run_container_publishes_fails_add_with_code_100_naming_it_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "a_port_a_run_container_publishes_fails_add_with_code_100_naming_it_and_leaves_nothing",
    ) else {
        return;
    };
    let (web, _out) = run_publishing_8080(&ns);
    let run_state = held(&ns);
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("8080") && msg.contains("web"), "{msg}");
    // Refused before anything was made; run's own are untouched.
    assert_eq!(run_state, held(&ns));
    assert_eq!(
        ns.ok("ip -n c1 -br link | grep -c eth0 || true").trim(),
        "0"
    );
    common::stop(web);
    assert_nothing_left(&ns);
}

/// A `run` container `web` publishing 8080 on the default test subnet.
fn run_publishing_8080(ns: &HostNs) -> (Child, std::io::BufReader<std::process::ChildStdout>) {
    ns.start(&[
        "--name",
        "web",
        "--subnet",
        "10.88.7.0/24",
        "--publish",
        "8080:8000",
        "--",
        "sh",
        "-c",
        "echo ready; read _ || true",
    ])
}

/// [`run_publishing_8080`] whose supervisor was killed (SIGKILL): its
/// element stays, nobody holds it.
fn crashed_run_publishing_8080(ns: &HostNs) {
    let (mut web, _out) = run_publishing_8080(ns);
    web.kill().expect("SIGKILL the supervisor");
    web.wait().expect("reap the supervisor");
    assert!(
        tcp_ports(ns).contains("8080 comment \"web"),
        "{}",
        tcp_ports(ns)
    );
}

#[test]
fn an_add_publishes_its_ports_after_taking_one_back_from_a_crashed_run_container() {
    let Some(ns) = HostNs::new("an_add_publishes_its_ports_after_taking_one_back_from_a_crashed")
    else {
        return;
    };
    crashed_run_publishing_8080(&ns);
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    let ports = tcp_ports(&ns);
    assert!(ports.contains("8080 comment \"c1:eth0"), "{ports}");
    assert!(!ports.contains("web"), "{ports}");
    let record = ns.ok(&format!("{} inspect c1:eth0", common::SUPERVISOR));
    assert!(
        record.contains("8080"),
        "the record names the port: {record}"
    );
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_chained_add_publishes_its_ports_after_taking_one_back_from_a_crashed_run_container() {
    let Some(ns) = HostNs::new("a_chained_add_publishes_its_ports_after_taking_one_back") else {
        return;
    };
    crashed_run_publishing_8080(&ns);
    netns_add(&ns, "c1");
    let conf = chained_conf(json!([{"address": "10.22.0.5/16"}]), "");
    call(&ns, "ADD", "c1", &conf).ok();
    let ports = tcp_ports(&ns);
    assert!(
        ports.contains("8080 comment \"c1:eth0") && ports.contains("10.22.0.5 . 80"),
        "{ports}"
    );
    assert!(!ports.contains("web"), "{ports}");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_eq!(tcp_ports(&ns), "");
}

#[test]
fn a_port_another_attachment_publishes_fails_add_after_plumbing_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "a_port_another_attachment_publishes_fails_add_after_plumbing_and_leaves_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    let before = held(&ns);
    // No socket holds it: the veth is made and the lease taken before the
    // kernel refuses the element; both go again.
    let (code, msg) = call(&ns, "ADD", "c2", &conf).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("8080") && msg.contains("c1:eth0"), "{msg}");
    assert_eq!(before, held(&ns));
    assert_eq!(
        ns.ok("ip -n c2 -br link | grep -c eth0 || true").trim(),
        "0"
    );
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_host_ip_that_is_a_multicast_or_broadcast_address_is_code_7_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "a_host_ip_that_is_a_multicast_or_broadcast_address_is_code_7_and_leaves_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    for addr in ["224.0.0.1", "255.255.255.255"] {
        let conf = conf(
            "1.0.0",
            json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "hostIP": addr}]}}),
        );
        let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
        assert_eq!(code, 7, "{msg}");
        assert!(
            msg.starts_with("runtimeConfig.portMappings: ")
                && msg.contains(&format!("{addr} is not an address of this host")),
            "{msg}"
        );
        assert_nothing_left(&ns);
        assert_eq!(tcp_ports(&ns), "");
    }
}

#[test]
fn a_port_a_host_service_listens_on_fails_add_with_code_100() {
    let Some(ns) = HostNs::new("a_port_a_host_service_listens_on_fails_add_with_code_100") else {
        return;
    };
    let mut service = ns
        .command("busybox")
        .args(["nc", "-ll", "-p", "8080", "-e", "echo", "host"])
        .stdin(Stdio::null())
        .spawn()
        .expect("a host service");
    eventually(
        "the host service listening",
        Duration::from_secs(10),
        || {
            ns.ok("ss -Hltn 'sport = :8080'")
                .contains("8080")
                .then_some(())
        },
    );
    netns_add(&ns, "c1");
    let (code, msg) = call(&ns, "ADD", "c1", &conf("1.0.0", publishing(8080, 8000))).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("8080"), "{msg}");
    let _ = service.kill();
    let _ = service.wait();
    assert_nothing_left(&ns);
}

#[test]
fn run_and_cni_share_leases_and_never_hand_out_one_address_twice() {
    let Some(ns) = HostNs::new("run_and_cni_share_leases_and_never_hand_out_one_address_twice")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    let result = call(&ns, "ADD", "c1", &conf).ok();
    assert_eq!(result["ips"][0]["address"], "10.88.7.2/24");
    let run = common::eth0_address(&ns, &["--subnet", "10.88.7.0/24"]);
    assert!(run.contains("10.88.7.3/24"), "{run}");
    // `supervisor gc` leaves a live attachment alone.
    ns.ok(&format!("{} gc --subnet 10.88.7.0/24", common::SUPERVISOR));
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    assert_eq!(leases(&ns).trim(), "10.88.7.2");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_bridge_name_that_is_another_kind_of_link_is_an_invalid_config_and_creates_nothing() {
    let Some(ns) = HostNs::new(
        "a_bridge_name_that_is_another_kind_of_link_is_an_invalid_config_and_creates_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let before = ns.ok("ip -br link");
    let conf = conf("1.0.0", json!({"bridge": "lo"}));
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(
        (code, msg.as_str()),
        (
            7,
            "bridge: lo exists and is not a bridge (it is a kindless link)"
        )
    );
    assert_eq!(ns.ok("ip -br link"), before);
    assert_eq!(ns.ok("find /run/supervisor/leases 2>/dev/null || true"), "");
    assert_eq!(records(&ns), "");
}

/// The kernel reads a '%' in a new link's name as a template for a free
/// one: `br%d` made a bridge `br0` that the failed ADD (which looked for
/// `br%d`) left behind, and `eth%d` a veth it could not find inside.
#[test]
fn a_bridge_or_interface_name_with_a_percent_sign_is_refused_naming_it_and_creates_nothing() {
    let Some(ns) = HostNs::new(
        "a_bridge_or_interface_name_with_a_percent_sign_is_refused_naming_it_and_creates_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let links = || (ns.ok("ip -br link"), ns.ok("ip -n c1 -br link"));
    let before = links();
    let conf_bridge = conf("1.0.0", json!({"bridge": "br%d", "subnet": "10.77.0.0/24"}));
    let (code, msg) = call(&ns, "ADD", "c1", &conf_bridge).error();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.starts_with("bridge: \"br%d\": "), "{msg}");
    assert!(msg.contains('%'), "{msg}");
    assert_eq!(links(), before);
    let plain = conf("1.0.0", json!({}));
    let (code, msg) = call_into(&ns, "ADD", "c1", "/run/netns/c1", "eth%d", &plain).error();
    assert_eq!(code, 4, "{msg}");
    assert!(msg.starts_with("CNI_IFNAME \"eth%d\" "), "{msg}");
    assert_eq!(links(), before);
    assert_nothing_left(&ns);
}

/// Host links are named `sv-` and the attachment's id: an ADD whose link
/// name was taken by a bridge of that name (with no record of that id)
/// took it for its own leftover and deleted it, and with it every other
/// container's link on it.
#[test]
fn a_bridge_named_like_a_host_link_is_refused_and_no_add_deletes_it() {
    let Some(ns) = HostNs::new("a_bridge_named_like_a_host_link_is_refused_and_no_add_deletes_it")
    else {
        return;
    };
    netns_add(&ns, "c1");
    // c1:eth0's id, which names its host link.
    let bridge = "sv-f53f02b3bfe9";
    ns.ok(&format!("ip link add {bridge} type bridge"));
    let before = ns.ok("ip -br link");
    let conf = conf("1.0.0", json!({"bridge": bridge, "subnet": "10.77.0.0/24"}));
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(code, 7, "{msg}");
    assert!(msg.starts_with(&format!("bridge: \"{bridge}\": ")), "{msg}");
    assert_eq!(ns.ok("ip -br link"), before);
    // Its "sv-" name reads as a container's link: no veth check.
    common::assert_no_state(&ns);
}

/// The prefix is refused to what makes an attachment only: a bridge of
/// that name made before it was (or by hand) keeps its DEL and GC, which an
/// engine retries forever when refused, leaving every attachment on it.
#[test]
fn a_del_and_gc_on_a_bridge_named_with_the_host_links_prefix_still_clean_up() {
    let Some(ns) =
        HostNs::new("a_del_and_gc_on_a_bridge_named_with_the_host_links_prefix_still_clean_up")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf(
        "1.1.0",
        json!({"bridge": "sv-lan", "subnet": "10.77.0.0/24"}),
    );
    call(&ns, "DEL", "c1", &conf).ok();
    call(&ns, "GC", "", &conf).ok();
    let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
    assert_eq!(code, 7, "{msg}");
    common::assert_no_state(&ns);
}

#[test]
fn a_failed_add_leaves_nothing_behind() {
    let Some(ns) = HostNs::new("a_failed_add_leaves_nothing_behind") else {
        return;
    };
    netns_add(&ns, "c1");
    // The interface name is taken inside: the veth cannot be made.
    ns.ok("ip -n c1 link add eth0 type veth peer name other0");
    let (code, msg) = call(&ns, "ADD", "c1", &conf("1.0.0", publishing(8080, 8000))).error();
    assert!(code >= 100, "{code}: {msg}");
    assert_eq!(
        msg, "CNI_NETNS \"/run/netns/c1\" has an interface eth0 already",
        "the message names the interface inside, not the host veth"
    );
    assert_nothing_left(&ns);
    assert_eq!(tcp_ports(&ns), "");
}

#[test]
fn an_add_into_a_namespace_another_attachment_routes_names_the_route_not_the_interface() {
    let Some(ns) = HostNs::new(
        "an_add_into_a_namespace_another_attachment_routes_names_the_route_not_the_interface",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({}));
    call(&ns, "ADD", "c1", &conf).ok();
    let before = (held(&ns), ns.ok("ip -n c1 -br link; ip -n c1 route"));
    // Another container id into c1's namespace, under a free name: the
    // kernel refuses its default route, c1's being there.
    let (code, msg) = call_into(&ns, "ADD", "c2", "/run/netns/c1", "eth1", &conf).error();
    assert!(code >= 100, "{code}: {msg}");
    assert!(
        msg.contains("default route") && !msg.contains("has an interface"),
        "{msg}"
    );
    eventually("c2's veth gone", Duration::from_secs(10), || {
        (container_veths(&ns).len() == 1).then_some(())
    });
    assert_eq!(
        (held(&ns), ns.ok("ip -n c1 -br link; ip -n c1 route")),
        before
    );
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

/// A `stateDir` that is a file, or under one, was answered "stateDir:
/// /dev/null", the path alone, as if it were the reason.
#[test]
fn a_state_dir_that_is_a_file_or_under_one_is_code_7_saying_so_for_add_and_del() {
    let Some(ns) =
        HostNs::new("a_state_dir_that_is_a_file_or_under_one_is_code_7_saying_so_for_add_and_del")
    else {
        return;
    };
    netns_add(&ns, "c1");
    ns.ok("touch /run/file");
    for (dir, why) in [
        ("/dev/null", "/dev/null is not a directory"),
        ("/run/file/state", "/run/file is not a directory"),
    ] {
        let conf = conf("1.0.0", json!({"stateDir": dir}));
        for command in ["ADD", "DEL"] {
            let (code, msg) = call(&ns, command, "c1", &conf).error();
            assert_eq!(
                (code, msg.as_str()),
                (7, format!("stateDir: {why}").as_str()),
                "{command}"
            );
        }
    }
    assert_eq!(ns.ok("ip -br link | grep -c sv || true"), "0\n");
    assert_nothing_left(&ns);
}

#[test]
fn a_state_directory_another_user_can_write_is_refused_so_a_planted_record_deletes_nothing() {
    let Some(ns) = HostNs::new(
        "a_state_directory_another_user_can_write_is_refused_so_a_planted_record_deletes_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", json!({"stateDir": "/run/planted"}));
    call(&ns, "ADD", "c1", &conf).ok();
    // Another user's records directory: they rewrite c1's record to name a
    // host link of their choosing, for DEL to delete.
    ns.ok(
        "ip link add victim0 type bridge && chown 65534 /run/planted/containers && \
         cp /run/planted/containers/c1:eth0.json /run/c1.orig && \
         sed -i 's/\"veth\": \"sv-[^\"]*\"/\"veth\": \"victim0\"/' \
           /run/planted/containers/c1:eth0.json && \
         grep -q victim0 /run/planted/containers/c1:eth0.json",
    );
    let (code, msg) = call(&ns, "DEL", "c1", &conf).error();
    assert_eq!(code, 7, "{msg}");
    assert_eq!(
        msg,
        "stateDir: /run/planted/containers: owned by uid 65534, not 0; a state directory \
         and what it holds must be writable by their owner, who runs the supervisor, alone"
    );
    assert!(ns.ok("ip -br link").contains("victim0"), "DEL deleted it");
    ns.ok(
        "chown 0 /run/planted/containers && mv /run/c1.orig /run/planted/containers/c1:eth0.json",
    );
    call(&ns, "DEL", "c1", &conf).ok();
    assert_eq!(elements(&ns), 0);
    ns.ok("ip link del victim0");
    common::wait_for_no_veth(&ns);
}

#[test]
fn a_published_port_reaches_the_attached_listener_from_outside_and_from_the_host() {
    let Some(ns) = HostNs::new(
        "a_published_port_reaches_the_attached_listener_from_outside_and_from_the_host",
    ) else {
        return;
    };
    let outside = ns.outside();
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    let mut server = serve(&ns, "c1", 8000, "hello-from-c1");
    let from = |runner: &dyn Fn(&str) -> std::process::Output, target: &str| {
        let script = format!("busybox nc -w 2 {target} 8080 </dev/null");
        String::from_utf8_lossy(&runner(&script).stdout).into_owned()
    };
    reaches(
        "the port from outside",
        || from(&|s| outside.sh(s), "192.0.2.1"),
        "hello-from-c1",
    );
    reaches(
        "the port from the host's 127.0.0.1",
        || from(&|s| ns.sh(s), "127.0.0.1"),
        "hello-from-c1",
    );
    let _ = server.kill();
    let _ = server.wait();
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn no_masquerade_cidrs_keep_the_containers_source_address() {
    let Some(ns) = HostNs::new("no_masquerade_cidrs_keep_the_containers_source_address") else {
        return;
    };
    let outside = ns.outside();
    let mut server = outside
        .command("busybox")
        .args(["nc", "-ll", "-p", "9000", "-e", "echo", "pong"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("listener outside");
    // The source address the outside sees, from the host's conntrack: the
    // reply goes to the container itself, or to the host (masqueraded).
    let seen_as = |id: &str| {
        reaches(
            "the outside from the container",
            || {
                String::from_utf8_lossy(
                    &ns.sh(&format!(
                        "ip netns exec {id} busybox nc -w 2 192.0.2.2 9000 </dev/null"
                    ))
                    .stdout,
                )
                .into_owned()
            },
            "pong",
        );
        ns.ok("conntrack -L -p tcp --dport 9000 2>/dev/null")
    };
    netns_add(&ns, "c1");
    let masqueraded = conf("1.0.0", json!({}));
    call(&ns, "ADD", "c1", &masqueraded).ok();
    let entries = seen_as("c1");
    assert!(
        entries.contains("dst=192.0.2.1 sport=9000"),
        "masqueraded: {entries}"
    );
    call(&ns, "DEL", "c1", &masqueraded).ok();
    ns.ok("conntrack -D -p tcp --dport 9000 2>/dev/null || true");

    netns_add(&ns, "c2");
    let cluster = conf("1.0.0", json!({"noMasqueradeCidrs": ["192.0.2.0/24"]}));
    let result = call(&ns, "ADD", "c2", &cluster).ok();
    let address = result["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    outside.ok("ip route replace 10.88.7.0/24 via 192.0.2.1");
    let entries = seen_as("c2");
    assert!(
        entries.contains(&format!("dst={address} sport=9000")),
        "kept its own address {address}: {entries}"
    );
    let _ = server.kill();
    let _ = server.wait();
    call(&ns, "DEL", "c2", &cluster).ok();
    assert_nothing_left(&ns);
}

/// Runs a reference plugin from /usr/lib/cni in `ns`.
fn reference(ns: &HostNs, plugin: &str, command: &str, id: &str, conf: &str) -> Answer {
    let netns = format!("/run/netns/{id}");
    let mut cmd = ns.command(&format!("/usr/lib/cni/{plugin}"));
    cmd.envs([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
    ]);
    answer(cmd, conf)
}

/// Whether the reference `bridge` plugin is missing (a loud skip; under
/// CI a failure).
fn reference_bridge_missing() -> bool {
    if std::path::Path::new("/usr/lib/cni/bridge").exists() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "containernetworking-plugins missing"
    );
    eprintln!("SKIPPED: /usr/lib/cni/bridge missing");
    true
}

#[test]
fn chained_after_the_reference_bridge_publishes_from_prev_result() {
    let Some(ns) = HostNs::new("chained_after_the_reference_bridge_publishes_from_prev_result")
    else {
        return;
    };
    if reference_bridge_missing() {
        return;
    }
    let outside = ns.outside();
    netns_add(&ns, "c1");
    let bridge_conf = json!({
        "cniVersion": "1.0.0", "name": "chain", "type": "bridge", "bridge": "cni0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "subnet": "10.22.0.0/16", "dataDir": "/run/cni-ipam",
                 "routes": [{"dst": "0.0.0.0/0"}]}
    });
    let prev = reference(&ns, "bridge", "ADD", "c1", &bridge_conf.to_string()).ok();
    let ours = |prev: &Value| {
        let mut doc: Value = serde_json::from_str(&conf("1.0.0", publishing(8080, 8000))).unwrap();
        doc["name"] = json!("chain");
        doc["prevResult"] = prev.clone();
        doc.to_string()
    };
    let result = call(&ns, "ADD", "c1", &ours(&prev)).ok();
    assert_eq!(result, prev, "prevResult passed through");
    let address = prev["ips"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let ports = tcp_ports(&ns);
    assert!(ports.contains("8080 comment \"c1:eth0"), "{ports}");
    assert!(ports.contains(&format!(": {address} . 8000")), "{ports}");
    assert_eq!(
        container_veths(&ns),
        Vec::<String>::new(),
        "no veth of ours"
    );
    assert_eq!(leases(&ns), "", "no lease of ours");
    let mut server = serve(&ns, "c1", 8000, "hello-chained");
    reaches(
        "the chained port from outside",
        || {
            String::from_utf8_lossy(
                &outside
                    .sh("busybox nc -w 2 192.0.2.1 8080 </dev/null")
                    .stdout,
            )
            .into_owned()
        },
        "hello-chained",
    );
    reaches(
        "the chained port from the host's 127.0.0.1",
        || {
            String::from_utf8_lossy(&ns.sh("busybox nc -w 2 127.0.0.1 8080 </dev/null").stdout)
                .into_owned()
        },
        "hello-chained",
    );
    assert_eq!(call(&ns, "CHECK", "c1", &ours(&prev)).ok(), Value::Null);
    let check = ns.sh(&format!("{} check", common::SUPERVISOR));
    assert!(
        check.status.success() && check.stdout.is_empty(),
        "a chained attachment is no drift: {}",
        common::stdout(&check)
    );
    // `supervisor gc` leaves its elements alone.
    ns.ok(&format!("{} gc", common::SUPERVISOR));
    assert!(tcp_ports(&ns).contains("c1:eth0"), "{}", tcp_ports(&ns));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(call(&ns, "DEL", "c1", &ours(&prev)).ok(), Value::Null);
    assert_eq!(tcp_ports(&ns), "", "our elements gone");
    assert_eq!(records(&ns), "");
    // The reference bridge's own interface is untouched by our DEL.
    assert!(
        ns.ok("ip -n c1 -br -4 addr show dev eth0")
            .contains(&address)
    );
    reference(&ns, "bridge", "DEL", "c1", &bridge_conf.to_string()).ok();
    assert_eq!(elements(&ns), 0);
}

#[test]
fn ps_lists_an_attachment_by_container_and_interface_and_stop_kill_and_exec_leave_it_to_the_engine()
{
    let Some(ns) = HostNs::new(
        "ps_lists_an_attachment_by_container_and_interface_and_stop_kill_and_exec_leave_it_to_the_engine",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", publishing(8080, 8000));
    call(&ns, "ADD", "c1", &conf).ok();
    let ps = ns.ok(&format!("{} ps --format '{{{{.Name}}}} {{{{.Address}}}} {{{{.Ports}}}} {{{{.Label \"cni.container\"}}}}'", common::SUPERVISOR));
    assert!(ps.contains("c1:eth0 10.88.7.2"), "{ps}");
    assert!(
        ps.contains("8080->8000/tcp") && ps.ends_with("c1\n"),
        "{ps}"
    );
    let inspect = ns.ok(&format!("{} inspect c1:eth0", common::SUPERVISOR));
    let inspect: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect["labels"]["cni.netns"], "/run/netns/c1");
    assert_eq!(inspect["live"]["link"]["bridge"], "sv0", "{inspect}");
    assert!(
        inspect["live"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["interface"] == "eth0" && a["address"] == "10.88.7.2"),
        "{inspect}"
    );
    let check = ns.sh(&format!("{} check", common::SUPERVISOR));
    assert!(
        check.status.success() && check.stdout.is_empty(),
        "a live attachment is no drift: {}{}",
        common::stdout(&check),
        stderr(&check)
    );
    for command in ["stop c1:eth0", "kill c1:eth0", "exec c1:eth0 true"] {
        let out = ns.sh(&format!("{} {command}", common::SUPERVISOR));
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert_eq!(
            stderr(&out).trim(),
            "supervisor: c1:eth0 is a CNI attachment, not a container: \
             its engine manages it (CNI DEL removes it)",
            "{command}"
        );
    }
    ns.ok(&format!("{} stop --all", common::SUPERVISOR));
    assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn concurrent_adds_get_distinct_addresses_and_dels_leave_nothing() {
    let Some(ns) = HostNs::new("concurrent_adds_get_distinct_addresses_and_dels_leave_nothing")
    else {
        return;
    };
    let ids: Vec<String> = (1..=8).map(|i| format!("c{i}")).collect();
    for id in &ids {
        netns_add(&ns, id);
    }
    let ns = &ns;
    let addresses: Vec<String> = std::thread::scope(|scope| {
        let adds: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                scope.spawn(move || {
                    let conf = conf("1.0.0", publishing(9000 + i as u16, 80));
                    let result = call(ns, "ADD", id, &conf).ok();
                    result["ips"][0]["address"].as_str().unwrap().to_string()
                })
            })
            .collect();
        adds.into_iter().map(|a| a.join().unwrap()).collect()
    });
    let mut distinct = addresses.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "{addresses:?}");
    std::thread::scope(|scope| {
        for (i, id) in ids.iter().enumerate() {
            scope.spawn(move || {
                let conf = conf("1.0.0", publishing(9000 + i as u16, 80));
                call(ns, "DEL", id, &conf).ok();
            });
        }
    });
    assert_nothing_left(ns);
}

// Dual stack (issue 14): `subnet6` in the configuration.

const SUBNET6: &str = "fd00:7::/64";
const HOST6: &str = "2001:db8::1";
const OUTSIDE6: &str = "2001:db8::2";

/// `extra` with the network made dual stack.
fn dual(extra: Value) -> Value {
    let mut doc = json!({ "subnet6": SUBNET6 });
    if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        doc.extend(extra.clone());
    }
    doc
}

/// The ip6 table's per-container elements and the IPv6 spoof guard, one a
/// line.
fn elements6(ns: &HostNs) -> String {
    ns.ok(
        "{ nft list table ip6 supervisor; nft list set bridge supervisor spoof_guard6; } \
         2>/dev/null | grep -E 'comment \"[^\" ]+ [^\"]+\"' || true",
    )
}

/// Whether some line of `listed` has element `key` of c1:eth0 with `data`.
fn has_element(listed: &str, key: &str, data: &str) -> bool {
    listed.lines().any(|line| {
        line.contains(&format!("{key} comment \"c1:eth0")) && line.contains(&format!(": {data}"))
    })
}

/// Serves `reply` on TCP `port` over IPv6 in netns `name`, until killed
/// (the namespace's end takes the loop with it).
fn serve6(ns: &HostNs, name: &str, port: u16, reply: &str) -> Child {
    ns.command("ip")
        .args(["netns", "exec", name, "sh", "-c"])
        .arg(format!(
            "while :; do echo {reply} | nc -6 -n -l -p {port} -N >/dev/null 2>&1; done"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start a listener")
}

#[test]
fn a_dual_stack_add_answers_both_addresses_and_routes_in_every_version_and_del_leaves_nothing() {
    let Some(ns) = HostNs::new("a_dual_stack_add_answers_both_addresses_and_routes") else {
        return;
    };
    let _outside = ns.outside6();
    netns_add(&ns, "c1");
    // Leases go round robin: each version's ADD takes the next address.
    for (n, version) in (2..).zip(VERSIONS) {
        let conf = conf(
            version,
            dual(json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 8000, "protocol": "tcp", "hostIP": ""},
                {"hostPort": 8081, "containerPort": 8000, "protocol": "tcp", "hostIP": "0.0.0.0"},
                {"hostPort": 8082, "containerPort": 8000, "protocol": "udp", "hostIP": "::"},
                {"hostPort": 8083, "containerPort": 8000, "protocol": "tcp", "hostIP": HOST6},
            ]}})),
        );
        let result = call(&ns, "ADD", "c1", &conf).ok();
        let ips = result["ips"].as_array().expect("ips");
        assert_eq!(ips.len(), 2, "{result}");
        assert_eq!(ips[0]["address"], format!("10.88.7.{n}/24"));
        assert_eq!(ips[1]["address"], format!("fd00:7::{n}/64"), "{result}");
        assert_eq!(ips[1]["gateway"], "fd00:7::1");
        assert_eq!(ips[1]["interface"], 1);
        let v040 = version == "0.4.0";
        assert_eq!(ips[1].get("version").is_some(), v040, "{result}");
        if v040 {
            assert_eq!(ips[1]["version"], "6");
        }
        assert_eq!(
            result["routes"],
            json!([{"dst": "0.0.0.0/0", "gw": "10.88.7.1"}, {"dst": "::/0", "gw": "fd00:7::1"}])
        );
        let inside = ns.ok("ip -n c1 -6 -o addr show dev eth0; ip -n c1 -6 route show default");
        assert!(
            inside.contains(&format!("inet6 fd00:7::{n}/64 scope global")),
            "{inside}"
        );
        assert!(!inside.contains("tentative"), "no DAD wait: {inside}");
        assert!(
            inside.contains("default via fd00:7::1 dev eth0"),
            "{inside}"
        );
        // The lease record holds the IPv6 address, as run's does.
        let lease = ns.ok(&format!("cat /run/supervisor/leases/sv0/10.88.7.{n}"));
        assert!(lease.contains(&format!("addr6=fd00:7::{n}")), "{lease}");
        // "" on both families, 0.0.0.0 on IPv4 only, :: and one IPv6
        // address on IPv6 only; the IPv6 spoof guard holds its addresses.
        let v4 = tcp_ports(&ns);
        assert!(v4.contains("8080 comment \"c1:eth0"), "{v4}");
        assert!(v4.contains("8081 comment \"c1:eth0"), "{v4}");
        let v6 = elements6(&ns);
        for key in ["8080", "8082", "2001:db8::1 . 8083"] {
            assert!(
                has_element(&v6, key, &format!("fd00:7::{n} . 8000")),
                "{key}: {v6}"
            );
        }
        assert!(
            v6.contains(&format!(
                " . fd00:7::{n} . 02:42:0a:58:07:{n:02x} comment \"c1:eth0"
            )),
            "the spoof guard: {v6}"
        );
        assert!(!v6.contains("8081"), "0.0.0.0 is IPv4 only: {v6}");
        let subnets6 = ns.ok("nft list set ip6 supervisor subnets6");
        assert!(
            subnets6.contains("fd00:7::/64 comment \"sv0\""),
            "{subnets6}"
        );
        assert_eq!(call(&ns, "CHECK", "c1", &conf).ok(), Value::Null);
        assert_eq!(call(&ns, "DEL", "c1", &conf).ok(), Value::Null);
        assert_nothing_left(&ns);
        assert_eq!(elements6(&ns), "");
        assert_eq!(
            ns.ok("ls /run/supervisor/leases/sv0"),
            "",
            "the IPv6 address's link went with the lease"
        );
    }
}

#[test]
fn check_after_the_ipv6_address_was_removed_inside_names_it() {
    let Some(ns) = HostNs::new("check_after_the_ipv6_address_was_removed_inside_names_it") else {
        return;
    };
    netns_add(&ns, "c1");
    let conf = conf("1.0.0", dual(json!({})));
    call(&ns, "ADD", "c1", &conf).ok();
    ns.ok("ip -n c1 -6 addr del fd00:7::2/64 dev eth0");
    let (code, msg) = call(&ns, "CHECK", "c1", &conf).error();
    assert_eq!(code, 104, "{msg}");
    assert!(msg.contains("does not have address fd00:7::2"), "{msg}");
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_bad_ipv6_configuration_is_code_7_naming_the_key_and_makes_nothing() {
    let Some(ns) = HostNs::new("a_bad_ipv6_configuration_is_code_7_naming_the_key") else {
        return;
    };
    netns_add(&ns, "c1");
    let cases = [
        (json!({"subnet6": "fd00:7::1/64"}), "subnet6:"),
        (json!({"subnet6": "fd00:7::/128"}), "subnet6:"),
        (json!({"ipv6": "on"}), "ipv6:"),
        (
            dual(json!({"noMasqueradeCidrs": ["fd00:10::/56", "2001:db8::1/64"]})),
            "noMasqueradeCidrs[1]:",
        ),
        (
            dual(json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "hostIP": "::1"}]}})),
            "runtimeConfig.portMappings[0].hostIP:",
        ),
        (
            dual(json!({"runtimeConfig": {"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "hostIP": "2001:db8::zz"}]}})),
            "runtimeConfig.portMappings[0].hostIP:",
        ),
    ];
    for (extra, key) in cases {
        let (code, msg) = call(&ns, "ADD", "c1", &conf("1.0.0", extra.clone())).error();
        assert_eq!(code, 7, "{extra}: {msg}");
        assert!(msg.starts_with(key), "{extra}: {msg}");
    }
    assert!(
        ns.sh("ip link show sv0").status.code() != Some(0),
        "no bridge was made"
    );
    assert_eq!(ns.ok("ls /run/supervisor 2>/dev/null || true"), "");
    assert_nothing_left(&ns);
}

#[test]
fn a_dual_stack_attachment_is_reached_over_ipv6_through_its_published_port_and_goes_out_with_nat66()
{
    let Some(ns) = HostNs::new("a_dual_stack_attachment_is_reached_over_ipv6") else {
        return;
    };
    let outside = ns.outside6();
    netns_add(&ns, "c1");
    let published = conf("1.0.0", dual(publishing(8080, 8000)));
    call(&ns, "ADD", "c1", &published).ok();
    let mut server = serve6(&ns, "c1", 8000, "hello6-from-c1");
    reaches(
        "[2001:db8::1]:8080 from outside",
        || common::container::ask(|s| outside.sh(s), HOST6, 8080),
        "hello6-from-c1",
    );
    reaches(
        "[2001:db8::1]:8080 from the host",
        || common::container::ask(|s| ns.sh(s), HOST6, 8080),
        "hello6-from-c1",
    );
    // The container sees the outside's own address.
    let seen = ns.ok("conntrack -L -f ipv6 -p tcp --dport 8080 2>/dev/null");
    assert!(
        seen.contains(&format!("src={OUTSIDE6} dst={HOST6}")),
        "{seen}"
    );
    let _ = server.kill();
    let _ = server.wait();

    // Out: masqueraded to the host's address (NAT66) ...
    let mut pong = outside
        .command("sh")
        .args([
            "-c",
            "while :; do echo pong | nc -6 -n -l -p 9000 -N >/dev/null 2>&1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("listener outside");
    let from_c1 =
        || common::container::ask(|s| ns.sh(&format!("ip netns exec c1 {s}")), OUTSIDE6, 9000);
    reaches("the outside from c1 over IPv6", from_c1, "pong");
    let entries = ns.ok("conntrack -L -f ipv6 -p tcp --dport 9000 2>/dev/null");
    assert!(
        entries.contains(&format!("src={OUTSIDE6} dst={HOST6} sport=9000")),
        "masqueraded: {entries}"
    );
    call(&ns, "DEL", "c1", &published).ok();
    assert_nothing_left(&ns);
    ns.ok("conntrack -D -f ipv6 -p tcp --dport 9000 2>/dev/null || true");

    // ... except to noMasqueradeCidrs, which sees the container's own.
    netns_add(&ns, "c2");
    let cluster = conf(
        "1.0.0",
        dual(json!({"noMasqueradeCidrs": ["2001:db8::/64"]})),
    );
    call(&ns, "ADD", "c2", &cluster).ok();
    outside.ok(&format!("ip -6 route replace {SUBNET6} via {HOST6}"));
    let from_c2 =
        || common::container::ask(|s| ns.sh(&format!("ip netns exec c2 {s}")), OUTSIDE6, 9000);
    reaches("the outside from c2 over IPv6", from_c2, "pong");
    let entries = ns.ok("conntrack -L -f ipv6 -p tcp --dport 9000 2>/dev/null");
    assert!(
        // The next address round robin: c1 had .2.
        entries.contains(&format!("src={OUTSIDE6} dst=fd00:7::3 sport=9000")),
        "kept its own address: {entries}"
    );
    let no_masquerade6 = ns.ok("nft list set ip6 supervisor no_masquerade6");
    assert!(
        no_masquerade6.contains("2001:db8::/64 comment \"sv0\""),
        "{no_masquerade6}"
    );
    let _ = pong.kill();
    let _ = pong.wait();
    call(&ns, "DEL", "c2", &cluster).ok();
    assert_nothing_left(&ns);
}

#[test]
fn chained_after_a_dual_stack_reference_bridge_publishes_to_both_addresses_from_prev_result() {
    let Some(ns) = HostNs::new("chained_after_a_dual_stack_reference_bridge") else {
        return;
    };
    if reference_bridge_missing() {
        return;
    }
    let outside = ns.outside6();
    netns_add(&ns, "c1");
    let bridge_conf = json!({
        "cniVersion": "1.0.0", "name": "chain", "type": "bridge", "bridge": "cni0",
        "isGateway": true, "ipMasq": true,
        "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam",
                 "ranges": [[{"subnet": "10.22.0.0/16"}], [{"subnet": "fd00:22::/64"}]],
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}
    })
    .to_string();
    let prev = reference(&ns, "bridge", "ADD", "c1", &bridge_conf).ok();
    let address6 = prev["ips"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|ip| ip["address"].as_str())
        .find(|a| a.contains(':'))
        .expect("an IPv6 address in prevResult")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut doc: Value = serde_json::from_str(&conf("1.0.0", publishing(8080, 8000))).unwrap();
    doc["name"] = json!("chain");
    doc["prevResult"] = prev.clone();
    let ours = doc.to_string();
    assert_eq!(call(&ns, "ADD", "c1", &ours).ok(), prev);
    let v6 = elements6(&ns);
    assert!(
        has_element(&v6, "8080", &format!("{address6} . 8000")),
        "{v6}"
    );
    assert!(tcp_ports(&ns).contains("8080 comment \"c1:eth0"));
    let mut server = serve6(&ns, "c1", 8000, "hello6-chained");
    reaches(
        "the chained port over IPv6 from outside",
        || common::container::ask(|s| outside.sh(s), HOST6, 8080),
        "hello6-chained",
    );
    assert_eq!(call(&ns, "CHECK", "c1", &ours).ok(), Value::Null);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(call(&ns, "DEL", "c1", &ours).ok(), Value::Null);
    assert_eq!(elements6(&ns), "", "our IPv6 elements gone");
    assert_eq!(records(&ns), "");
    reference(&ns, "bridge", "DEL", "c1", &bridge_conf).ok();
    assert_eq!(elements(&ns), 0);
}

#[test]
fn a_port_another_attachment_publishes_on_ipv6_only_fails_a_dual_stack_add_and_leaves_nothing() {
    let Some(ns) = HostNs::new("a_port_another_attachment_publishes_on_ipv6_only") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let on_ipv6 = conf(
        "1.0.0",
        dual(json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 8000, "hostIP": "::"}]}})),
    );
    call(&ns, "ADD", "c1", &on_ipv6).ok();
    let before = (
        held(&ns),
        elements6(&ns),
        ns.ok("ls -A /run/supervisor/leases/sv0"),
    );
    // Its IPv4 element is free, its IPv6 one taken: the one batch fails
    // whole, and the veth, the lease and its IPv6 link go again.
    let both = conf("1.0.0", dual(publishing(8080, 8000)));
    let (code, msg) = call(&ns, "ADD", "c2", &both).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("8080") && msg.contains("c1:eth0"), "{msg}");
    let after = (
        held(&ns),
        elements6(&ns),
        ns.ok("ls -A /run/supervisor/leases/sv0"),
    );
    assert_eq!(before, after);
    assert_eq!(
        ns.ok("ip -n c2 -br link | grep -c eth0 || true").trim(),
        "0"
    );
    call(&ns, "DEL", "c1", &on_ipv6).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_no_masquerade_cidr_of_every_address_is_code_7_naming_it_and_changes_nothing() {
    let Some(ns) = HostNs::new(
        "a_no_masquerade_cidr_of_every_address_is_code_7_naming_it_and_changes_nothing",
    ) else {
        return;
    };
    netns_add(&ns, "c1");
    // As a source it would let every address open connections into the
    // bridges, not only a cluster's pods.
    for every in ["0.0.0.0/0", "::/0"] {
        let conf = conf(
            "1.0.0",
            json!({"noMasqueradeCidrs": ["10.244.0.0/16", every]}),
        );
        let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
        assert_eq!(code, 7, "{msg}");
        assert!(
            msg.starts_with(&format!("noMasqueradeCidrs[1]: \"{every}\"")),
            "{msg}"
        );
        assert_nothing_left(&ns);
        assert_eq!(
            ns.ok("nft list tables 2>/dev/null | grep -c supervisor || true")
                .trim(),
            "0",
            "no table made"
        );
    }
}

#[test]
fn a_network_name_over_255_bytes_or_with_a_control_character_is_code_7_and_changes_nothing() {
    let Some(ns) =
        HostNs::new("a_network_name_over_255_bytes_or_with_a_control_character_is_code_7")
    else {
        return;
    };
    netns_add(&ns, "c1");
    for name in [
        "n".repeat(256),
        "n".repeat((4 << 20) - 1000),
        "ne\u{7}t".to_string(),
    ] {
        let mut doc: Value = serde_json::from_str(&conf("1.0.0", json!({}))).unwrap();
        doc["name"] = json!(name);
        let (code, msg) = call(&ns, "ADD", "c1", &doc.to_string()).error();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.starts_with("name: "), "{msg}");
        assert!(msg.len() < 400, "{:.200}", msg);
        assert_nothing_left(&ns);
    }
    let mut doc: Value = serde_json::from_str(&conf("1.0.0", json!({}))).unwrap();
    doc["name"] = json!("n".repeat(255));
    call(&ns, "ADD", "c1", &doc.to_string()).ok();
    call(&ns, "DEL", "c1", &doc.to_string()).ok();
    assert_nothing_left(&ns);
}

/// A link with 10.99.0.1/24 and fd99::1/64: addresses of the host.
fn host_addresses(ns: &HostNs) {
    ns.ok(
        "ip link add d0 type veth peer name d1 && ip addr add 10.99.0.1/24 dev d0 \
           && ip -6 addr add fd99::1/64 dev d0 nodad && ip link set d1 up && ip link set d0 up",
    );
}

/// Our configuration chained after a plugin whose result gave `ips`.
fn chained_conf(ips: Value, host_ip: &str) -> String {
    let mut doc: Value = serde_json::from_str(&conf(
        "1.0.0",
        json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "hostIP": host_ip}]}}),
    ))
    .unwrap();
    doc["prevResult"] = json!({"cniVersion": "1.0.0", "ips": ips});
    doc.to_string()
}

#[test]
fn a_prev_result_address_of_the_host_itself_is_code_7_naming_it_and_leaves_nothing() {
    let Some(ns) = HostNs::new(
        "a_prev_result_address_of_the_host_itself_is_code_7_naming_it_and_leaves_nothing",
    ) else {
        return;
    };
    host_addresses(&ns);
    netns_add(&ns, "c1");
    // The element would forward a host port to the host itself.
    for (ips, field) in [
        (json!([{"address": "10.99.0.1/24"}]), "prevResult.ips[0]"),
        (
            json!([{"address": "10.22.0.5/16"}, {"address": "fd99::1/64"}]),
            "prevResult.ips[1]",
        ),
    ] {
        let (code, msg) = call(&ns, "ADD", "c1", &chained_conf(ips, "")).error();
        assert_eq!(code, 7, "{msg}");
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
        assert!(msg.contains("of this host"), "{msg}");
        assert_nothing_left(&ns);
        assert_eq!(tcp_ports(&ns), "");
    }
    // An address the host does not have is published to.
    let conf = chained_conf(json!([{"address": "10.22.0.5/16"}]), "");
    call(&ns, "ADD", "c1", &conf).ok();
    assert!(
        tcp_ports(&ns).contains("10.22.0.5 . 80"),
        "{}",
        tcp_ports(&ns)
    );
    call(&ns, "DEL", "c1", &conf).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_host_ip_that_is_a_subnets_directed_broadcast_is_code_7_naming_it_and_leaves_nothing() {
    let Some(ns) =
        HostNs::new("a_host_ip_that_is_a_subnets_directed_broadcast_is_code_7_naming_it")
    else {
        return;
    };
    host_addresses(&ns);
    netns_add(&ns, "c1");
    let ours = conf(
        "1.0.0",
        json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8081, "containerPort": 80},
            {"hostPort": 8080, "containerPort": 80, "hostIP": "10.99.0.255"}]}}),
    );
    let chained = chained_conf(json!([{"address": "10.22.0.5/16"}]), "10.99.0.255");
    for (conf, field) in [
        (ours, "runtimeConfig.portMappings[1].hostIP"),
        (chained, "runtimeConfig.portMappings[0].hostIP"),
    ] {
        let (code, msg) = call(&ns, "ADD", "c1", &conf).error();
        assert_eq!(code, 7, "{msg}");
        assert!(
            msg.starts_with(&format!("{field}: \"10.99.0.255\" is a broadcast address")),
            "{msg}"
        );
        assert_nothing_left(&ns);
        assert_eq!(tcp_ports(&ns), "");
    }
}

#[test]
fn a_prev_result_address_on_a_bridge_of_ours_is_code_7_naming_it_and_publishes_nothing() {
    let Some(ns) = HostNs::new("a_prev_result_address_on_a_bridge_of_ours_is_code_7") else {
        return;
    };
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    // c1 is ours, on sv0, and publishes nothing: 10.88.7.2.
    let ours = conf("1.0.0", json!({}));
    let add = call(&ns, "ADD", "c1", &ours).ok();
    assert_eq!(add["ips"][0]["address"], "10.88.7.2/24", "{add}");
    let before = held(&ns);
    let subnets = || ns.ok("nft list set ip supervisor subnets");
    let subnets_before = subnets();
    // The tables are every state directory's: a chained network of a
    // state directory of its own (no lease directory of sv0's there) must
    // see sv0 as ours all the same.
    ns.ok("mkdir -m 755 /run/other");
    // A previous plugin's result naming c1's address (or a free one of
    // sv0's subnet, the next container's) would publish host port 8080 to
    // a port c1 never published; one naming sv0 as its bridge would make
    // sv0's network sets its own subnet's.
    let cases = [
        (
            json!([{"address": "10.88.7.2/24"}]),
            json!([]),
            "prevResult.ips[0]",
        ),
        (
            json!([{"address": "fd00:22::5/64"}, {"address": "10.88.7.77/24"}]),
            json!([]),
            "prevResult.ips[1]",
        ),
        (
            json!([{"address": "10.22.0.5/16"}]),
            json!([{"name": "sv0"}]),
            "prevResult.interfaces",
        ),
    ];
    for (state_dir, (ips, interfaces, field)) in [None, Some("/run/other")]
        .into_iter()
        .flat_map(|dir| cases.clone().into_iter().map(move |case| (dir, case)))
    {
        let mut doc: Value = serde_json::from_str(&chained_conf(ips, "")).unwrap();
        doc["prevResult"]["interfaces"] = interfaces;
        if let Some(dir) = state_dir {
            doc["stateDir"] = json!(dir);
        }
        let (code, msg) = call(&ns, "ADD", "c2", &doc.to_string()).error();
        assert_eq!(code, 7, "{state_dir:?}: {msg}");
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
        assert!(msg.contains("sv0"), "{msg}");
        assert_eq!(held(&ns), before, "{state_dir:?}: {msg}");
        assert_eq!(subnets(), subnets_before, "{state_dir:?}: {msg}");
    }
    // Whose address it is, when it is held.
    let (_, msg) = call(
        &ns,
        "ADD",
        "c2",
        &chained_conf(json!([{"address": "10.88.7.2/24"}]), ""),
    )
    .error();
    assert!(msg.contains("c1:eth0"), "{msg}");
    call(&ns, "DEL", "c1", &ours).ok();
    assert_nothing_left(&ns);
}

#[test]
fn a_del_or_check_for_another_network_leaves_an_attachment_of_this_one_alone() {
    let Some(ns) = HostNs::new("a_del_or_check_for_another_network_leaves_an_attachment_alone")
    else {
        return;
    };
    netns_add(&ns, "c1");
    let net1 = conf("1.0.0", publishing(8080, 80));
    call(&ns, "ADD", "c1", &net1).ok();
    let before = held(&ns);
    // An engine attaching c1 to a second network under the same interface
    // name is refused, and then cleans up after the failed ADD as engines
    // do: that DEL is net2's, and c1 has nothing of net2.
    let net2 = conf(
        "1.0.0",
        json!({"name": "net2", "bridge": "sv1", "subnet": "10.88.8.0/24"}),
    );
    let (code, _) = call(&ns, "ADD", "c1", &net2).error();
    assert_eq!(code, 101);
    let (code, msg) = call(&ns, "CHECK", "c1", &net2).error();
    assert_eq!(code, 103, "{msg}");
    assert!(msg.contains("net2"), "{msg}");
    // Left alone, and said so (on stderr, where an engine logs it).
    let del = call_with(
        &ns,
        "DEL",
        "c1",
        "/run/netns/c1",
        "eth0",
        &net2,
        &[("RUST_LOG", "warn")],
    );
    assert!(
        del.stderr
            .contains("c1 has attachment eth0 on network net1, not net2: left as it is"),
        "{del:?}"
    );
    assert_eq!(del.ok(), Value::Null);
    assert_eq!(held(&ns), before);
    call(&ns, "CHECK", "c1", &net1).ok();
    call(&ns, "DEL", "c1", &net1).ok();
    assert_nothing_left(&ns);
}

#[test]
fn no_masquerade_cidrs_open_and_exempt_only_the_network_that_names_them_and_go_with_its_bridge() {
    let Some(ns) = HostNs::new("no_masquerade_cidrs_open_only_the_network_that_names_them") else {
        return;
    };
    let outside = ns.outside();
    // c1 on a cluster network naming the outside's range, c2 on another
    // network naming nothing: neither publishes a port.
    netns_add(&ns, "c1");
    netns_add(&ns, "c2");
    let cluster = conf(
        "1.0.0",
        json!({"name": "cluster", "bridge": "sv1", "subnet": "10.88.8.0/24",
               "noMasqueradeCidrs": ["192.0.2.0/24"]}),
    );
    call(&ns, "ADD", "c1", &cluster).ok();
    let other = conf("1.0.0", json!({}));
    call(&ns, "ADD", "c2", &other).ok();
    let mut one = serve(&ns, "c1", 80, "one");
    let mut two = serve(&ns, "c2", 80, "two");
    let from_outside = |address: &str| {
        String::from_utf8_lossy(
            &outside
                .sh(&format!("busybox nc -w 2 {address} 80 </dev/null"))
                .stdout,
        )
        .into_owned()
    };
    reaches(
        "c1 from the cluster's range",
        || from_outside("10.88.8.2"),
        "one",
    );
    // Another network's container is not the cluster's to reach.
    let answer = from_outside("10.88.7.2");
    assert!(!answer.contains("two"), "c2 reached from outside: {answer}");
    // Nor does it go to the cluster's range with its own address.
    let mut server = outside
        .command("busybox")
        .args(["nc", "-ll", "-p", "9000", "-e", "echo", "pong"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("listener outside");
    reaches(
        "the outside from c2",
        || {
            String::from_utf8_lossy(
                &ns.sh("ip netns exec c2 busybox nc -w 2 192.0.2.2 9000 </dev/null")
                    .stdout,
            )
            .into_owned()
        },
        "pong",
    );
    let entries = ns.ok("conntrack -L -p tcp --dport 9000 2>/dev/null");
    assert!(
        entries.contains("dst=192.0.2.1 sport=9000"),
        "c2 masqueraded: {entries}"
    );
    for child in [&mut one, &mut two, &mut server] {
        let _ = child.kill();
        let _ = child.wait();
    }
    // The cluster network's range goes with its bridge.
    call(&ns, "DEL", "c1", &cluster).ok();
    call(&ns, "DEL", "c2", &other).ok();
    ns.ok("ip link del sv1");
    let gc = common::supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let said = common::stdout(&gc);
    assert!(said.contains("unmasqueraded 192.0.2.0/24"), "{said}");
    let left = ns.ok("nft list set ip supervisor no_masquerade");
    assert!(!left.contains("192.0.2.0"), "{left}");
    assert_nothing_left(&ns);
}

#[test]
fn no_masquerade_cidrs_nested_across_adds_on_one_bridge_keep_their_union() {
    let Some(ns) = HostNs::new("no_masquerade_cidrs_nested_across_adds_on_one_bridge") else {
        return;
    };
    let set = || {
        let listed = ns.ok("nft list set ip supervisor no_masquerade");
        let mut held: Vec<String> = listed
            .split(['{', ',', '}'])
            .map(str::trim)
            .filter(|e| e.starts_with('"'))
            .map(|e| e.split(" comment").next().unwrap_or(e).to_string())
            .collect();
        held.sort();
        held
    };
    // One network (its bridge sv0) whose configuration changed between
    // ADDs: each asks for a range nested in, or holding, one asked before.
    let asked = |cidrs: Value| conf("1.0.0", json!({ "noMasqueradeCidrs": cidrs }));
    let steps = [
        (
            "c1",
            json!(["10.99.0.0/16"]),
            vec!["\"sv0\" . 10.99.0.0/16"],
        ),
        ("c2", json!(["10.0.0.0/8"]), vec!["\"sv0\" . 10.0.0.0/8"]),
        ("c3", json!(["10.99.0.0/24"]), vec!["\"sv0\" . 10.0.0.0/8"]),
        (
            "c4",
            json!(["192.0.2.0/25", "192.0.2.0/24"]),
            vec!["\"sv0\" . 10.0.0.0/8", "\"sv0\" . 192.0.2.0/24"],
        ),
    ];
    for (name, cidrs, held) in &steps {
        netns_add(&ns, name);
        call(&ns, "ADD", name, &asked(cidrs.clone())).ok();
        assert_eq!(&set(), held, "after {name}'s ADD asking {cidrs}");
    }
    // A range put there by hand, overlapping an asked one partly: the
    // kernel's refusal names the range and the bridge.
    ns.ok("nft add element ip supervisor no_masquerade '{ \"sv0\" . 172.15.0.0-172.16.0.255 }'");
    netns_add(&ns, "c5");
    let (code, msg) = call(&ns, "ADD", "c5", &asked(json!(["172.16.0.0/16"]))).error();
    assert_eq!(code, 110, "{msg}");
    assert!(
        msg.contains("172.16.0.0/16") && msg.contains("bridge sv0"),
        "{msg}"
    );
    ns.ok("nft delete element ip supervisor no_masquerade '{ \"sv0\" . 172.15.0.0-172.16.0.255 }'");
    call(&ns, "DEL", "c5", &asked(json!(["172.16.0.0/16"]))).ok();
    for (name, cidrs, _) in steps {
        call(&ns, "DEL", name, &asked(cidrs)).ok();
    }
    assert_nothing_left(&ns);
}

#[test]
fn a_state_directory_through_another_users_link_is_refused_and_status_is_not_ready_making_nothing()
{
    let Some(ns) = HostNs::new("a_state_directory_through_another_users_link_is_refused") else {
        return;
    };
    netns_add(&ns, "c1");
    // /run/shared is every user's, as /tmp; another user's link there
    // leads to a directory of root's, and can be pointed anywhere whenever
    // it likes.
    ns.ok(
        "mkdir -m 1777 /run/shared && mkdir /run/roots && ln -s /run/roots /run/shared/link \
         && chown -h 65534 /run/shared/link",
    );
    let conf = |command: &str| {
        let version = if command == "STATUS" {
            "1.1.0"
        } else {
            "1.0.0"
        };
        conf(version, json!({"stateDir": "/run/shared/link/sv/state"}))
    };
    let why = "stateDir: /run/shared/link: owned by uid 65534 in /run/shared, which every \
               user can write (mode 1777): it could put another in its place; a state \
               directory and what it holds must be writable by their owner, who runs the \
               supervisor, alone";
    let (code, msg) = call(&ns, "ADD", "c1", &conf("ADD")).error();
    assert_eq!((code, msg.as_str()), (7, why));
    let (code, msg) = call(&ns, "STATUS", "", &conf("STATUS")).error();
    assert_eq!(code, 50, "{msg}");
    assert!(msg.ends_with(why.trim_start_matches("stateDir: ")), "{msg}");
    assert_eq!(
        ns.ok("ls -A /run/roots"),
        "",
        "STATUS made a directory there"
    );
    assert_nothing_left(&ns);
}

#[test]
fn a_prev_result_prefix_wider_than_its_bridges_network_is_code_7_naming_the_route_it_covers() {
    let Some(ns) = HostNs::new("a_prev_result_prefix_wider_than_its_bridges_network_is_code_7")
    else {
        return;
    };
    host_addresses(&ns);
    // The previous plugin's bridge and network, as the reference bridge
    // plugin makes them.
    ns.ok(
        "ip link add cni0 type bridge && ip addr add 10.22.0.1/16 dev cni0 && ip link set cni0 up",
    );
    netns_add(&ns, "c1");
    let chained = |address: &str| {
        let mut doc: Value =
            serde_json::from_str(&chained_conf(json!([{"address": address}]), "")).unwrap();
        doc["prevResult"]["interfaces"] = json!([{"name": "cni0"}]);
        doc.to_string()
    };
    // A /8 would make 10.0.0.0/8 cni0's network in our sets: the host's
    // traffic from 10.99.0.0/24 (d0's) masqueraded as a container's.
    let (code, msg) = call(&ns, "ADD", "c1", &chained("10.22.0.5/8")).error();
    assert_eq!(code, 7, "{msg}");
    assert_eq!(
        msg,
        "prevResult.ips[0]: \"10.22.0.5/8\" makes 10.0.0.0/8 the network of cni0, which \
         overlaps the route 10.99.0.0/24 on d0: not the previous plugin's network alone"
    );
    let subnets = ns.ok("nft list set ip supervisor subnets 2>/dev/null || true");
    assert!(!subnets.contains("10.0.0.0/8"), "{subnets}");
    assert_eq!(records(&ns), "");
    let conf = chained("10.22.0.5/16");
    call(&ns, "ADD", "c1", &conf).ok();
    let subnets = ns.ok("nft list set ip supervisor subnets");
    assert!(
        subnets.contains("10.22.0.0/16 comment \"cni0\""),
        "{subnets}"
    );
    call(&ns, "DEL", "c1", &conf).ok();
}

#[test]
fn a_prev_result_prefix_covering_an_address_of_the_host_is_code_7_naming_it() {
    let Some(ns) = HostNs::new("a_prev_result_prefix_covering_an_address_of_the_host") else {
        return;
    };
    // A virtual address of the host's (no prefix route: the route check
    // sees nothing), and the previous plugin's bridge and network.
    ns.ok(
        "ip link add vip0 type bridge && ip link set vip0 up && ip addr add 10.1.2.3/32 dev vip0 \
         && ip link add cni0 type bridge && ip addr add 10.22.0.1/16 dev cni0 \
         && ip link set cni0 up",
    );
    netns_add(&ns, "c1");
    let mut doc: Value =
        serde_json::from_str(&chained_conf(json!([{"address": "10.22.0.5/8"}]), "")).unwrap();
    doc["prevResult"]["interfaces"] = json!([{"name": "cni0"}]);
    // 10.0.0.0/8 in our sets would masquerade the host's own traffic from
    // 10.1.2.3 as a container's.
    let (code, msg) = call(&ns, "ADD", "c1", &doc.to_string()).error();
    assert_eq!(code, 7, "{msg}");
    assert_eq!(
        msg,
        "prevResult.ips[0]: \"10.22.0.5/8\" makes 10.0.0.0/8 the network of cni0, which \
         holds 10.1.2.3, an address of this host on vip0: not the previous plugin's network alone"
    );
    let subnets = ns.ok("nft list set ip supervisor subnets 2>/dev/null || true");
    assert!(!subnets.contains("10.0.0.0/8"), "{subnets}");
    assert_eq!(records(&ns), "");
    assert_eq!(tcp_ports(&ns), "");
}

#[test]
fn another_state_directorys_attachment_keeps_its_elements_through_gc_check_and_a_runs_port() {
    let Some(ns) = HostNs::new("another_state_directorys_attachment_keeps_its_elements") else {
        return;
    };
    netns_add(&ns, "c1");
    // A CNI network with a state directory of its own, beside run's.
    let theirs = conf(
        "1.0.0",
        json!({"stateDir": "/run/cni", "bridge": "sv1", "subnet": "10.88.8.0/24",
               "runtimeConfig": {"portMappings": [
                   {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}}),
    );
    call(&ns, "ADD", "c1", &theirs).ok();
    let held = || ns.ok("nft list ruleset | grep -c 'comment \"c1:eth0 ' || true");
    assert_eq!(
        held().trim(),
        "5",
        "its port, two guards, its generation (two)"
    );
    // gc and check of run's state directory: c1 is none of theirs.
    let gc = common::supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_eq!(common::stdout(&gc), "");
    assert_eq!(held().trim(), "5", "gc took them");
    let check = common::supervisor(&ns, &["check"]);
    assert!(
        !common::stdout(&check).contains("c1:eth0"),
        "{}",
        common::stdout(&check)
    );
    // Nor may a run take its port (it holds no socket) by removing them.
    let out = ns.run(&["-p", "8080:80", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("c1:eth0"), "{}", stderr(&out));
    assert_eq!(held().trim(), "5", "run took them");
    call(&ns, "DEL", "c1", &theirs).ok();
    assert_eq!(held().trim(), "0");
}
