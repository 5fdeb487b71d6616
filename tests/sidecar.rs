//! `run --network container:NAME`: a sidecar in another running
//! container's network namespace, end to end, each test in its own
//! throwaway host (see common/mod.rs).

mod common;

use common::container::{Container, answers, ask, outside, serve_tcp};
use common::{
    HostNs, assert_no_drift, assert_no_state, container_veths, crash_at, elements, leases, records,
    stderr, stdout, supervisor,
};

/// Until something answers on 127.0.0.1:8000 (the target's server may
/// still be starting), then what it said.
const ASK_LOOPBACK: &str = "for i in $(seq 100); do \
     r=$(timeout 3 nc -n -N -w2 127.0.0.1 8000 </dev/null) && [ -n \"$r\" ] && break; \
     sleep 0.05; done; echo \"$r\"";

#[test]
fn a_sidecar_reaches_its_targets_service_on_loopback_and_sees_its_eth0_address_and_hostname() {
    let Some(ns) = HostNs::new(
        "a_sidecar_reaches_its_targets_service_on_loopback_and_sees_its_eth0_address_and_hostname",
    ) else {
        return;
    };
    let web = Container::start(
        &ns,
        &["--name", "web", "--hostname", "box", "--ip", "172.16.0.9"],
        &serve_tcp("web", 8000),
    );
    let script = format!(
        "ip -4 -o addr show eth0 | grep -o 'inet [^ ]*'; hostname; cat /etc/hostname; \
         grep -c box /etc/hosts; {ASK_LOOPBACK}"
    );
    let out = ns.run(&["--network", "container:web", "--", "sh", "-c", &script]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "inet 172.16.0.9/24\nbox\nbox\n1\nfrom-web\n");

    // ps and inspect say whose network it is.
    let side = Container::start(
        &ns,
        &["--name", "side", "--network", "container:web"],
        "true",
    );
    let ps = stdout(&supervisor(&ns, &["ps"]));
    let line = ps
        .lines()
        .find(|l| l.starts_with("side "))
        .unwrap_or_default();
    assert!(line.contains("container:web"), "{ps}");
    let inspect = stdout(&supervisor(&ns, &["inspect", "side"]));
    assert!(
        inspect.contains(r#""network": "container:web""#),
        "{inspect}"
    );
    // exec into the sidecar sees the shared eth0 too.
    let exec = supervisor(
        &ns,
        &["exec", "side", "ip", "-4", "-o", "addr", "show", "eth0"],
    );
    assert!(stdout(&exec).contains("172.16.0.9/24"), "{}", stderr(&exec));
    side.stop();
    web.stop();
    assert_no_state(&ns);
}

#[test]
fn a_port_published_by_the_target_is_served_by_its_sidecar_and_the_sidecars_end_leaves_it() {
    let Some(ns) = HostNs::new(
        "a_port_published_by_the_target_is_served_by_its_sidecar_and_the_sidecars_end_leaves_it",
    ) else {
        return;
    };
    let out = ns.outside();
    let web = Container::start(&ns, &["--name", "web", "-p", "8080:8000"], "sleep 1000");
    let side = Container::start(
        &ns,
        &["--name", "side", "--network", "container:web"],
        &serve_tcp("side", 8000),
    );
    answers("a client outside", "from-side", || {
        ask(outside(&out), "192.0.2.1", 8080)
    });
    // A live join is no drift.
    assert_no_drift(&ns);
    let before = (container_veths(&ns), leases(&ns), elements(&ns));
    assert_eq!(side.stop(), "", "the sidecar's teardown reports nothing");
    // Its end took nothing of the target's: veth, lease, elements, drift.
    assert_eq!((container_veths(&ns), leases(&ns), elements(&ns)), before);
    assert_no_drift(&ns);
    web.stop();
    assert_no_state(&ns);
}

#[test]
fn sharing_a_network_refuses_publish_ip_hostname_and_names_and_a_missing_or_stopped_target() {
    let Some(ns) = HostNs::new(
        "sharing_a_network_refuses_publish_ip_hostname_and_names_and_a_missing_or_stopped_target",
    ) else {
        return;
    };
    let refused = |options: &[&str], expected: &str| {
        let mut args = vec!["--network", "container:web"];
        args.extend_from_slice(options);
        args.extend(["--", "true"]);
        let out = ns.run(&args);
        assert_eq!(out.status.code(), Some(125), "{options:?}");
        assert_eq!(
            stderr(&out),
            format!("supervisor: {expected}\n"),
            "{options:?}"
        );
    };
    let conflict = |option: &str, what: &str| {
        format!(
            "conflicting options: {option} and --network container:web: the container shares web's {what}"
        )
    };
    refused(
        &["-p", "8080:80"],
        &conflict("--publish", "ports: publish them when running it"),
    );
    refused(&["--ip", "172.16.0.9"], &conflict("--ip", "address"));
    refused(&["--hostname", "box"], &conflict("--hostname", "hostname"));
    refused(
        &["--dns", "192.0.2.53"],
        &conflict("--dns", "/etc/resolv.conf"),
    );
    refused(
        &["--dns-search", "example.com"],
        &conflict("--dns-search", "/etc/resolv.conf"),
    );
    refused(
        &["--add-host", "db:192.0.2.9"],
        &conflict("--add-host", "/etc/hosts"),
    );
    refused(&[], "--network container:web: no such container");
    assert_eq!(records(&ns), "", "nothing registered");
    // A target that could name no record is refused naming it, and its
    // lookup goes nowhere outside the records.
    for target in ["../containers/x", ".", "a\u{1}b"] {
        let network = format!("container:{target}");
        let out = ns.run(&["--network", &network, "--", "true"]);
        assert_eq!(out.status.code(), Some(125), "{target:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("supervisor: {target:?} names no container: ")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(records(&ns), "", "nothing registered");
    // Its supervisor killed while it ran: the record is left, the container
    // is gone.
    crash_at(&ns, "running", &["--name", "web", "--", "sleep", "1000"]);
    refused(&[], "--network container:web: the container is not running");
    assert_eq!(records(&ns), "web.json\n", "only the crashed one's");
}

#[test]
fn when_the_target_ends_first_its_sidecar_runs_on_with_lo_only_and_gives_back_nothing_of_its() {
    let Some(ns) = HostNs::new(
        "when_the_target_ends_first_its_sidecar_runs_on_with_lo_only_and_gives_back_nothing_of_its",
    ) else {
        return;
    };
    let web = Container::start(
        &ns,
        &["--name", "web", "--ip", "172.16.0.9", "-p", "8080:8000"],
        "sleep 1000",
    );
    let side = Container::start(
        &ns,
        &["--name", "side", "--network", "container:web"],
        "true",
    );
    assert_eq!(web.stop(), "");
    // The address went with the lease, at once: it is not left behind in
    // the namespace the sidecar keeps.
    let links = side.sh("ip -o link | cut -d: -f2 | tr -d ' '");
    assert_eq!(stdout(&links), "lo\n");
    assert_eq!((leases(&ns), elements(&ns)), (String::new(), 0));
    // The address can be taken again and works.
    let reused = ns.run(&[
        "--ip",
        "172.16.0.9",
        "--",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(
        stdout(&reused).contains("172.16.0.9/24"),
        "{}",
        stderr(&reused)
    );
    assert_eq!(side.stop(), "", "the sidecar's teardown reports nothing");
    assert!(join_markers(&ns).is_empty());
    assert_no_state(&ns);
}

/// The names of the containers marked as sharing another's network.
fn join_markers(ns: &HostNs) -> Vec<String> {
    let found = ns.ok("find /run/supervisor/joins -mindepth 2 -printf '%f\\n' 2>/dev/null || true");
    found.lines().map(str::to_string).collect()
}

#[test]
fn stop_and_gc_handle_a_sidecars_record_and_leave_the_targets_network() {
    let Some(ns) =
        HostNs::new("stop_and_gc_handle_a_sidecars_record_and_leave_the_targets_network")
    else {
        return;
    };
    let web = Container::start(&ns, &["--name", "web", "-p", "8080:8000"], "sleep 1000");
    let before = (container_veths(&ns), leases(&ns), elements(&ns));
    let side = Container::start(
        &ns,
        &["--name", "side", "--network", "container:web"],
        "sleep 1000",
    );
    let stopped = supervisor(&ns, &["stop", "side"]);
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let _ = side.supervisor.wait_with_output();
    crash_at(
        &ns,
        "running",
        &[
            "--name",
            "crashed",
            "--network",
            "container:web",
            "--",
            "sleep",
            "1000",
        ],
    );
    // The stopped one's marker went with it; the crashed one's is left.
    assert_eq!(join_markers(&ns), ["crashed"]);
    let check = stdout(&supervisor(&ns, &["check"]));
    assert!(
        check.contains("/crashed: its joiner crashed is gone\n"),
        "{check}"
    );
    let gc = supervisor(&ns, &["gc"]);
    assert!(gc.status.success(), "{}", stderr(&gc));
    let removed = stdout(&gc);
    assert!(removed.contains("crashed"), "{removed}");
    assert!(join_markers(&ns).is_empty(), "gone with its record");
    assert!(!removed.contains("web"), "{removed}");
    assert_eq!((container_veths(&ns), leases(&ns), elements(&ns)), before);
    assert_no_drift(&ns);
    web.stop();
    assert_no_state(&ns);
}

#[test]
fn a_containers_start_and_end_open_no_other_record_even_when_a_sidecar_shares_it() {
    let Some(ns) = HostNs::new(
        "a_containers_start_and_end_open_no_other_record_even_when_a_sidecar_shares_it",
    ) else {
        return;
    };
    // Another record that tells when it is opened: its writer's open
    // returns then. Reading every record made a container's end cost
    // milliseconds with 1,000 running.
    let stranger = "/run/supervisor/containers/stranger.json";
    ns.ok(&format!(
        "mkdir -p /run/supervisor/containers && mkfifo {stranger} && \
         (timeout 60 sh -c ': >{stranger} && touch /run/opened') >/dev/null 2>&1 &"
    ));
    let web = Container::start(&ns, &["--name", "web", "-p", "8080:8000"], "sleep 1000");
    let side = Container::start(
        &ns,
        &["--name", "side", "--network", "container:web"],
        "sleep 1000",
    );
    assert_eq!(web.stop(), "");
    let links = side.sh("ip -o link | cut -d: -f2 | tr -d ' '");
    assert_eq!(
        stdout(&links),
        "lo\n",
        "the sidecar was found: its veth went"
    );
    assert_eq!(side.stop(), "");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !ns.sh("test -e /run/opened").status.success(),
        "another record was opened"
    );
    ns.ok(&format!("timeout 5 cat {stranger}; rm {stranger}"));
    assert_no_state(&ns);
}
