//! The plan and its read-back, end to end: `run --dry-run` changes nothing
//! and plans what a run then applies; `check` reports no drift for what a
//! run holds, and names each thing deleted behind the supervisor's back.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::container::Background;
use common::{HostNs, UNTIL_STDIN_CLOSES, args, assert_no_drift, stderr, stdout, stop, supervisor};
use serde_json::Value;
use supervisor::firewall::Owned;
use supervisor::plan::{self, Request, Snapshot};
use supervisor::values::{Generation, Owner};

/// Container `web` publishing a TCP port everywhere and a UDP one on
/// 127.0.0.1.
const TWO_PORTS: &[&str] = &[
    "--name",
    "web",
    "-p",
    "8080:8000",
    "-p",
    "127.0.0.1:9090:90/udp",
];

fn inspect(ns: &HostNs, name: &str) -> Value {
    let out = supervisor(ns, &["inspect", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).expect("JSON")
}

/// [`system`] once the host's addresses have settled, for the state a
/// test compares with later: a bridge made a moment before has its
/// link-local address `tentative` (duplicate address detection) for about
/// a second, and a later snapshot would differ by that word alone (once
/// in a full suite's run on a loaded machine, where the test took longer).
fn settled_system(ns: &HostNs) -> String {
    common::eventually(
        "no tentative address (duplicate address detection done)",
        Duration::from_secs(30),
        || (!ns.ok("ip addr").contains("tentative")).then_some(()),
    );
    system(ns)
}

/// Everything a run could change: the ruleset, links, addresses, routes,
/// the sysctls it sets, and every file under /run.
fn system(ns: &HostNs) -> String {
    ns.ok(
        "nft list ruleset; ip link; ip addr; bridge link; ip route; \
           cat /proc/sys/net/ipv4/ip_forward; \
           cat /proc/sys/net/ipv4/conf/*/route_localnet; \
           find /run | sort",
    )
}

/// Starts container `web` publishing 8080:8000; its supervisor and id.
fn start_web(ns: &HostNs) -> (std::process::Child, String) {
    let (web, _out) = ns.start(&args(
        &["--name", "web", "-p", "8080:8000"],
        UNTIL_STDIN_CLOSES,
    ));
    let id = inspect(ns, "web")["id"].as_str().unwrap().to_string();
    (web, id)
}

#[test]
fn a_dry_run_into_a_closed_pipe_exits_0_without_a_word() {
    let Some(ns) = HostNs::new("a_dry_run_into_a_closed_pipe_exits_0_without_a_word") else {
        return;
    };
    // `run --dry-run | head -1`: the reader is gone before the plan is out,
    // which is its choice, not a failure.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ns
        .supervisor()
        .args(args(&["run", "--dry-run", "-p", "8080:8000"], &["true"]))
        .stdout(writer)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "");
}

#[test]
fn a_dry_run_prints_the_plan_and_changes_nothing() {
    let Some(ns) = HostNs::new("a_dry_run_prints_the_plan_and_changes_nothing") else {
        return;
    };
    let before = settled_system(&ns);
    let out = supervisor(
        &ns,
        &args(&[&["run", "--dry-run"], TWO_PORTS].concat(), &["true"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    for line in [
        "ip link add sv0 address 02:42:ac:10:00:01 type bridge",
        "sysctl -w net.ipv4.ip_forward=1",
        "ip -n CONTAINER addr add 172.16.0.2/24 dev eth0",
        "ip -n CONTAINER route add default via 172.16.0.1 dev eth0 proto static",
        "add element ip supervisor subnets { 172.16.0.0/24 comment \"sv0\" }",
    ] {
        assert!(plan.lines().any(|l| l == line), "{line:?} not in\n{plan}");
    }
    assert!(
        plan.lines()
            .any(|l| l.starts_with("add element ip supervisor tcp_ports { 8080 comment \"web ")),
        "{plan}"
    );
    assert_eq!(system(&ns), before, "a dry run changed the system");
}

/// A run with every kind of element: a bridge network with IPv6, TCP and
/// UDP ports, a range, and ports bound to an IPv4 and an IPv6 address.
const EVERY_KIND: &[&str] = &[
    "--ipv6",
    "--name",
    "web",
    "-p",
    "8080:80",
    "-p",
    "9000-9001:9000-9001/udp",
    "-p",
    "127.0.0.1:8443:443",
    "-p",
    "[::1]:8444:443/udp",
];

/// The plan `run --dry-run` prints for [`EVERY_KIND`].
fn dry_run_every_kind(ns: &HostNs) -> String {
    let run = [&["run", "--dry-run"], EVERY_KIND].concat();
    let out = supervisor(ns, &args(&run, &["true"]));
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The ruleset and the generation of the container `web` in it (the hex
/// after `: ` in map generations), for comparing two runs.
fn ruleset_and_generation(ns: &HostNs) -> (String, String) {
    let ruleset = ns.ok("nft list ruleset");
    let generation = ruleset
        .lines()
        .find(|l| l.contains("elements = { 172.16.0.2 comment"))
        .and_then(|l| l.rsplit_once(" : "))
        .map(|(_, g)| g.trim_end_matches(" }").to_string())
        .unwrap_or_else(|| panic!("no generation element in\n{ruleset}"));
    (ruleset, generation)
}

/// The dry run shows what a run does in nft's own syntax: nft itself takes
/// every nft line it prints (the base ruleset with its defines, then each
/// element), and what they make is what the run makes, but for the
/// container's id and generation.
#[test]
fn nft_runs_the_nft_lines_of_a_dry_run_and_makes_what_the_run_makes() {
    let test = "nft_runs_the_nft_lines_of_a_dry_run_and_makes_what_the_run_makes";
    let (Some(dry), Some(real)) = (HostNs::new(test), HostNs::new(test)) else {
        return;
    };
    let plan = dry_run_every_kind(&dry);
    let nft: Vec<&str> = plan.lines().filter(|l| l.starts_with("nft ")).collect();
    assert_eq!(nft.len(), 1, "the base ruleset, once:\n{plan}");
    dry.ok(&format!("cd {} && {}", env!("CARGO_MANIFEST_DIR"), nft[0]));
    let adds: Vec<&str> = plan.lines().filter(|l| l.starts_with("add ")).collect();
    assert!(adds.len() > 20, "{plan}");
    for add in &adds {
        let out = dry.command("nft").arg(add).output().unwrap();
        assert!(
            out.status.success(),
            "nft refuses {add:?}: {}",
            stderr(&out)
        );
    }
    let dry_id = plan
        .lines()
        .next()
        .and_then(|l| l.split_once(" ("))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("no id on the first line of\n{plan}"));

    let (container, _out) = real.start(&args(EVERY_KIND, UNTIL_STDIN_CLOSES));
    let real_id = inspect(&real, "web")["id"].as_str().unwrap().to_string();
    let (want, real_generation) = ruleset_and_generation(&real);
    stop(container);
    let (got, dry_generation) = ruleset_and_generation(&dry);
    let got = got
        .replace(&dry_id, &real_id)
        .replace(&dry_generation, &real_generation);
    assert_eq!(got, want, "the dry run's nft lines make another ruleset");
}

/// The rest of a dry run, `ip` and `sysctl` lines in the run's order, runs
/// as printed with CONTAINER a named network namespace (IPv6's link-local
/// address, for one, only while the peer is down).
#[test]
fn ip_and_sysctl_run_the_other_lines_of_a_dry_run_in_its_order() {
    let Some(ns) = HostNs::new("ip_and_sysctl_run_the_other_lines_of_a_dry_run_in_its_order")
    else {
        return;
    };
    let plan = dry_run_every_kind(&ns);
    ns.ok("ip netns add CONTAINER");
    let lines: Vec<&str> = plan
        .lines()
        .filter(|l| l.starts_with("ip ") || l.starts_with("sysctl "))
        .collect();
    assert!(lines.len() > 15, "{plan}");
    for line in lines {
        let out = ns.sh(line);
        assert!(out.status.success(), "{line:?}: {}", stderr(&out));
    }
    let inside = ns.ok("ip -n CONTAINER addr show eth0");
    for address in [
        "172.16.0.2/24",
        "fd53:7570:6572::2/64",
        "fe80::42:acff:fe10:2/64",
    ] {
        assert!(inside.contains(address), "{address} not in\n{inside}");
    }
}

/// The exit code and stderr of `BEFORE --dry-run AFTER -- true`, then of
/// the same without `--dry-run`.
fn dry_run_and_run(ns: &HostNs, before: &[&str], after: &[&str]) -> Vec<(Option<i32>, String)> {
    [&["--dry-run"][..], &[]]
        .iter()
        .map(|dry| {
            let run = [before, dry, after].concat();
            let out = supervisor(ns, &args(&run, &["true"]));
            (out.status.code(), stderr(&out))
        })
        .collect()
}

/// A dry run answers as the run would: a state directory the run refuses
/// (another user could plant records there) is refused by the plan too.
#[test]
fn a_dry_run_refuses_a_state_directory_every_user_can_write_as_the_run_does() {
    use std::os::unix::fs::PermissionsExt;
    let test = "a_dry_run_refuses_a_state_directory_every_user_can_write_as_the_run_does";
    let Some(ns) = HostNs::new(test) else {
        return;
    };
    let dir = common::unique_temp_path(test);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = settled_system(&ns);
    let answers = dry_run_and_run(&ns, &["--state-dir", dir.to_str().unwrap(), "run"], &[]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(answers[0], answers[1], "the dry run and the run differ");
    assert_eq!(answers[0].0, Some(125), "{}", answers[0].1);
    assert!(
        answers[0].1.contains("writable by every user"),
        "{}",
        answers[0].1
    );
    assert_eq!(system(&ns), before, "a refused run changed the system");
}

#[test]
fn a_dry_run_beside_a_running_container_plans_around_what_it_holds() {
    let Some(ns) = HostNs::new("a_dry_run_beside_a_running_container_plans_around_what_it_holds")
    else {
        return;
    };
    let (web, id) = start_web(&ns);
    let before = settled_system(&ns);
    let out = supervisor(
        &ns,
        &args(&["run", "--dry-run", "-p", "8081:8000"], &["true"]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = stdout(&out);
    assert!(plan.contains("# lease 172.16.0.3 on sv0"), "{plan}");
    assert!(
        !plan.contains("ip link add sv0"),
        "the bridge exists: {plan}"
    );
    assert!(!plan.contains("nft -f"), "the tables are loaded: {plan}");
    // Refused as the run refuses it, in its words.
    let answers = dry_run_and_run(&ns, &["run"], &["-p", "8080:80"]);
    assert_eq!(answers[0], answers[1], "the dry run and the run differ");
    assert_eq!(answers[0].0, Some(125), "{}", answers[0].1);
    assert!(
        answers[0].1.starts_with(&format!(
            "supervisor: cannot publish 8080->80/tcp: host port 8080/tcp is in use by container web ({id}"
        )),
        "{}",
        answers[0].1
    );
    assert_eq!(system(&ns), before, "a dry run changed the system");
    stop(web);
}

#[test]
fn a_dry_run_refuses_a_port_a_host_program_holds_as_the_run_does() {
    let Some(ns) = HostNs::new("a_dry_run_refuses_a_port_a_host_program_holds_as_the_run_does")
    else {
        return;
    };
    let _tcp = Background::start(ns.command("timeout"), "nc -n -lk -p 9090 </dev/null");
    common::eventually("the host listener", Duration::from_secs(10), || {
        ns.ok("ss -Hlnt 'sport = :9090'")
            .contains("9090")
            .then_some(())
    });
    let before = settled_system(&ns);
    let answers = dry_run_and_run(&ns, &["run"], &["-p", "9090:80"]);
    assert_eq!(answers[0], answers[1], "the dry run and the run differ");
    assert_eq!(answers[0].0, Some(125), "{}", answers[0].1);
    assert!(
        answers[0].1.starts_with(
            "supervisor: cannot publish 9090->80/tcp: host port 9090/tcp is in use by process "
        ),
        "{}",
        answers[0].1
    );
    assert_eq!(system(&ns), before, "a dry run changed the system");
}

#[test]
fn the_kernel_holds_what_the_plan_says_and_check_finds_no_drift() {
    let Some(ns) = HostNs::new("the_kernel_holds_what_the_plan_says_and_check_finds_no_drift")
    else {
        return;
    };
    let (web, _out) = ns.start(&args(TWO_PORTS, UNTIL_STDIN_CLOSES));
    let view = inspect(&ns, "web");
    let id = view["id"].as_str().unwrap().to_string();
    let request = Request {
        owner: Owner {
            name: "web".into(),
            id: id.clone(),
        },
        bridge: "sv0".into(),
        subnet: "172.16.0.0/24".parse().unwrap(),
        address: None,
        subnet6: None,
        address6: None,
        mappings: ["8080:8000", "127.0.0.1:9090:90/udp"]
            .iter()
            .flat_map(|p| supervisor::publish::parse(p).unwrap())
            .collect(),
    };
    // The run's own generation, random, as its record has it.
    let snapshot = Snapshot {
        generation: view["generation"]
            .as_u64()
            .and_then(|g| Generation::new(g as u32)),
        ..Snapshot::default()
    };
    assert!(snapshot.generation.is_some(), "{view}");
    let plan = plan::plan(&request, &snapshot).unwrap();
    let container = &plan.container;
    // Read back: the link, the address inside, the elements, the sysctls.
    let live = &view["live"];
    assert_eq!(live["link"]["name"], container.host_ifname.as_str());
    assert_eq!(live["link"]["bridge"], "sv0");
    assert_eq!(live["link"]["up"], true);
    assert_eq!(container.address, Ipv4Addr::new(172, 16, 0, 2));
    let eth0 = serde_json::json!({"interface": plan::PEER, "address": container.address.to_string(), "prefix_len": container.prefix_len});
    assert!(
        live["addresses"].as_array().unwrap().contains(&eth0),
        "{live}"
    );
    let mut planned: Vec<String> = container
        .publication
        .elements()
        .into_iter()
        .map(|e| Owned::from(e).to_string())
        .collect();
    let mut held: Vec<String> = live["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    planned.sort();
    held.sort();
    assert_eq!(held, planned);
    for sysctl in &plan.network.sysctls {
        let path = &sysctl.path;
        assert_eq!(ns.ok(&format!("cat {path}")).trim(), sysctl.value, "{path}");
    }
    let pid = view["container"]["pid"].as_u64().unwrap();
    let inside = ns.ok(&format!(
        "nsenter --net=/proc/{pid}/ns/net ip route show default"
    ));
    assert_eq!(
        inside.trim(),
        format!("default via {} dev eth0 proto static", container.gateway)
    );
    assert_no_drift(&ns);
    stop(web);
    assert_no_drift(&ns);
}

#[test]
fn check_names_an_element_and_a_link_deleted_behind_the_supervisors_back() {
    let Some(ns) =
        HostNs::new("check_names_an_element_and_a_link_deleted_behind_the_supervisors_back")
    else {
        return;
    };
    let (web, id) = start_web(&ns);
    assert_no_drift(&ns);
    ns.ok("nft delete element ip supervisor tcp_ports '{ 8080 }'");
    let before = settled_system(&ns);
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("element tcp_ports 8080 of web ({id}): missing\n")
    );
    assert_eq!(system(&ns), before, "check changed the system");
    // `check | head -c0`: the reader is gone, the drift is still there.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = common::run(ns.supervisor().arg("check").stdout(writer));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "nothing about the pipe");
    ns.ok(&format!("ip link del sv-{id}"));
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "link sv-{id} of web ({id}): missing\n\
             element tcp_ports 8080 of web ({id}): missing\n"
        )
    );
    stop(web);
    assert_no_drift(&ns);
}

#[test]
fn check_names_what_a_killed_supervisor_left() {
    let Some(ns) = HostNs::new("check_names_what_a_killed_supervisor_left") else {
        return;
    };
    common::crash_at(
        &ns,
        "recorded",
        &["--name", "web", "-p", "8080:8000", "--", "true"],
    );
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let found = stdout(&out);
    assert!(found.starts_with("record web ("), "{found}");
    assert!(found.contains("its supervisor (pid"), "{found}");
    assert!(
        found.contains("lease 172.16.0.2 (bridge sv0): its holder web ("),
        "{found}"
    );
    assert!(
        found.contains("element tcp_ports 8080: its owner web ("),
        "{found}"
    );
    let gc = supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_no_drift(&ns);
}

#[test]
fn check_names_a_dual_stack_containers_ipv6_element_and_a_stale_ipv6_lease_link_as_gc_removes_it() {
    let Some(ns) = HostNs::new("check_names_a_dual_stack_containers_ipv6_element") else {
        return;
    };
    let (web, _out) = ns.start(&args(
        &["--ipv6", "--name", "web", "-p", "8080:8000"],
        UNTIL_STDIN_CLOSES,
    ));
    let id = inspect(&ns, "web")["id"].as_str().unwrap().to_string();
    assert_no_drift(&ns);
    ns.ok("nft delete element ip6 supervisor tcp_ports '{ 8080 }'");
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("element tcp_ports 8080 of web ({id}): missing\n")
    );
    stop(web);
    assert_no_drift(&ns);
    // A link left by a lease whose record is gone: gc sweeps it, so check
    // names it.
    ns.ok("ln -s 172.16.0.9 /run/supervisor/leases/sv0/fd53:7570:6572::9");
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "lease fd53:7570:6572::9 (bridge sv0): no record holds this IPv6 address\n"
    );
    let gc = supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    assert_no_drift(&ns);
}

#[test]
fn check_names_a_stale_marker_as_gc_removes_it_and_a_missing_id_marker_as_gc_makes_it() {
    let Some(ns) = HostNs::new("check_names_a_stale_marker_as_gc_removes_it") else {
        return;
    };
    let (web, id) = start_web(&ns);
    // A joiner of web that crashed before its record, a joiner of a
    // container that is gone, the id marker of a record that is gone, and
    // web's record as an earlier version left it, without its id marker.
    ns.ok(&format!(
        "mkdir -p /run/supervisor/joins/deadbeef /run/supervisor/joins/{id} \
           /run/supervisor/ids/deadbeef && \
         touch /run/supervisor/joins/{id}/ghost /run/supervisor/joins/deadbeef/side \
           /run/supervisor/ids/deadbeef/gone && \
         rm -r /run/supervisor/ids/{id}"
    ));
    let mut expected = [
        format!("join marker /run/supervisor/joins/{id}/ghost: its joiner ghost is gone"),
        "join marker /run/supervisor/joins/deadbeef/side: its joiner side is gone".to_string(),
        "id marker /run/supervisor/ids/deadbeef/gone: its record gone is gone".to_string(),
        format!("record web ({id}): its id has no marker"),
    ];
    expected.sort();
    let out = supervisor(&ns, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let mut lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, expected);
    let gc = supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let said = stdout(&gc) + &stderr(&gc);
    for line in &expected[..3] {
        assert!(said.contains(line), "gc did not say {line:?}: {said}");
    }
    assert!(
        said.contains(&format!("marked record web ({id}): its id had no marker")),
        "{said}"
    );
    assert!(
        stdout(&supervisor(&ns, &["inspect", &id[..6]])).contains("\"name\": \"web\""),
        "found by a prefix of its id once marked"
    );
    assert_no_drift(&ns);
    assert_eq!(
        ns.ok("find /run/supervisor/joins /run/supervisor/ids -mindepth 1"),
        format!("/run/supervisor/ids/{id}\n/run/supervisor/ids/{id}/web\n"),
        "gc left a stale marker"
    );
    stop(web);
    assert_no_drift(&ns);
}

#[test]
fn a_dry_run_refuses_a_name_in_use_and_a_container_network_of_no_running_container_as_the_run_does()
{
    let Some(ns) = HostNs::new(
        "a_dry_run_refuses_a_name_in_use_and_a_container_network_of_no_running_container",
    ) else {
        return;
    };
    let (web, _) = start_web(&ns);
    let before = settled_system(&ns);
    for options in [
        &["--name", "web"][..],
        &["--network", "container:nosuch"],
        &["--name", "web", "--network", "container:web"],
    ] {
        let answers = dry_run_and_run(&ns, &["run"], options);
        assert_eq!(
            answers[0], answers[1],
            "{options:?}: the dry run and the run differ"
        );
        assert_eq!(answers[0].0, Some(125), "{options:?}: {}", answers[0].1);
    }
    assert_eq!(system(&ns), before, "a refused run changed the system");
    stop(web);
}
