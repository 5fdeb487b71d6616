//! Each container's own /etc/hostname, /etc/hosts and /etc/resolv.conf:
//! its names resolve at once without DNS, `--add-host` and `--dns*` work as
//! in docker, and the host's files are never touched.
//!
//! Each test's host gets a resolv.conf of its own (bound over /etc/resolv.conf
//! in the test host's mount namespace) whose servers are documentation
//! addresses with no route: no DNS server is reachable, and nothing leaves.

mod common;

use std::process::Output;

use common::{HostNs, stderr, stdout};

/// A host whose /etc/resolv.conf is `resolv` and, when given, whose
/// systemd-resolved upstream list is `upstream`.
fn host(test: &str, resolv: &str, upstream: Option<&str>) -> Option<HostNs> {
    let ns = HostNs::new(test)?;
    ns.ok(&format!(
        "printf '{resolv}' > /run/sv-test-resolv.conf && mount --bind /run/sv-test-resolv.conf /etc/resolv.conf"
    ));
    if let Some(upstream) = upstream {
        ns.ok(&format!(
            "mkdir -p /run/systemd/resolve && printf '{upstream}' > /run/systemd/resolve/resolv.conf"
        ));
    }
    Some(ns)
}

/// Counts the DNS queries any container sends, as they come into the
/// bridge by its port: the unreachable server never answers, so a name
/// looked up there is a wait on the resolver's timeout.
const DNS_SPY: &str = "table bridge dns_spy {
    chain prerouting {
        type filter hook prerouting priority -400; policy accept;
        iifname \"sv-*\" meta l4proto { tcp, udp } th dport 53 counter
    }
}";

fn spy_on_dns(ns: &HostNs) {
    ns.ok(&format!("nft -f - <<'EOF'\n{DNS_SPY}\nEOF"));
}

/// The DNS queries counted since `spy_on_dns`.
fn dns_queries(ns: &HostNs) -> u64 {
    common::counted_packets(&ns.ok("nft list chain bridge dns_spy prerouting"))
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}: {}", out.status, stderr(out));
    stdout(out)
}

const UNREACHABLE: &str = "nameserver 192.0.2.53\\nsearch example.test\\n";

#[test]
fn the_hostname_resolves_at_once_to_the_containers_address_without_dns() {
    let Some(ns) = host(
        "the_hostname_resolves_at_once_to_the_containers_address_without_dns",
        UNREACHABLE,
        None,
    ) else {
        return;
    };
    spy_on_dns(&ns);
    // IPv4 alone: `getent hosts` asks for an IPv6 address first, which
    // the container does not have (nor in docker), and that goes to DNS
    // whatever /etc/hosts says.
    let script = "getent ahostsv4 $(hostname) | head -n 1; \
                  ip -4 -o addr show eth0 | awk '{print $4}'";
    let out = ok(&ns.run(&["--name", "web", "--", "sh", "-c", script]));
    // A query to the unreachable nameserver would wait out the resolver's
    // 5 s timeout.
    assert_eq!(dns_queries(&ns), 0, "DNS queries for the hostname: {out}");
    let lines: Vec<&str> = out.lines().collect();
    let address = lines[1].split('/').next().unwrap();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [address, "STREAM", "web"],
        "{out}"
    );
    // Without a network the hostname is 127.0.0.1's, as in docker.
    let out = ok(&ns.run(&[
        "--network",
        "none",
        "--hostname",
        "solo",
        "getent",
        "hosts",
        "solo",
    ]));
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(words[..2], ["127.0.0.1", "solo"], "{out}");
}

#[test]
fn hosts_has_localhost_the_extra_hosts_and_the_containers_names() {
    let Some(ns) = host(
        "hosts_has_localhost_the_extra_hosts_and_the_containers_names",
        UNREACHABLE,
        None,
    ) else {
        return;
    };
    let out = ok(&ns.run(&[
        "--name",
        "c1",
        "--hostname",
        "web",
        "--ip",
        "172.16.0.9",
        "--add-host",
        "db:192.0.2.10",
        "--add-host",
        "v6=2001:db8::1",
        "--",
        "sh",
        "-c",
        "cat /etc/hostname /etc/hosts; getent -s hosts:files hosts db c1",
    ]));
    assert_eq!(
        out,
        "web\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n\
         192.0.2.10\tdb\n\
         2001:db8::1\tv6\n\
         172.16.0.9\tweb c1\n\
         192.0.2.10      db\n\
         172.16.0.9      web c1\n"
    );
}

#[test]
fn resolv_conf_drops_loopback_servers_and_follows_the_resolved_stub() {
    let Some(ns) = host(
        "resolv_conf_drops_loopback_servers_and_follows_the_resolved_stub",
        "nameserver 127.0.0.53\\nsearch lan\\noptions edns0\\n",
        Some("nameserver 192.0.2.53\\nnameserver 127.0.0.1\\nsearch corp.test\\n"),
    ) else {
        return;
    };
    let out = ns.run(&["--network", "none", "cat", "/etc/resolv.conf"]);
    assert_eq!(ok(&out), "nameserver 192.0.2.53\nsearch corp.test\n");
    assert_eq!(stderr(&out), "");
    // Nothing but loopback: a warning, and no nameserver at all.
    ns.ok("printf 'nameserver 127.0.0.1\\nsearch lan\\n' > /run/sv-test-resolv.conf && rm -r /run/systemd");
    let out = ns.run(&["--network", "none", "cat", "/etc/resolv.conf"]);
    assert_eq!(ok(&out), "search lan\n");
    assert!(stderr(&out).contains("no DNS"), "{}", stderr(&out));
}

#[test]
fn dns_options_replace_the_hosts_servers_search_and_options() {
    let Some(ns) = host(
        "dns_options_replace_the_hosts_servers_search_and_options",
        "nameserver 127.0.0.1\\nsearch lan\\noptions edns0\\n",
        None,
    ) else {
        return;
    };
    let out = ns.run(&[
        "--network",
        "none",
        "--dns",
        "192.0.2.1",
        "--dns",
        "192.0.2.2",
        "--dns-search",
        "a.test",
        "--dns-option",
        "ndots:2",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert_eq!(
        ok(&out),
        "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch a.test\noptions ndots:2\n"
    );
    assert_eq!(stderr(&out), "", "--dns leaves nothing to warn about");
    for (option, value) in [
        ("--dns", "dns.example"),
        ("--add-host", "db"),
        ("--add-host", "d b:192.0.2.1"),
        ("--dns-search", "a b"),
        ("--dns-option", ""),
    ] {
        let out = ns.run(&["--network", "none", option, value, "true"]);
        assert_eq!(out.status.code(), Some(125), "{option} {value:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("invalid {option} {value:?}")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

#[test]
fn the_hosts_files_stay_as_they_were_and_the_containers_go_with_it() {
    let Some(ns) = host(
        "the_hosts_files_stay_as_they_were_and_the_containers_go_with_it",
        UNREACHABLE,
        None,
    ) else {
        return;
    };
    let sums = "md5sum /etc/hostname /etc/hosts /etc/resolv.conf";
    let before = ns.ok(sums);
    let out = ns.run(&[
        "--add-host",
        "db:192.0.2.10",
        "--",
        "sh",
        "-c",
        "echo 192.0.2.99 mine >> /etc/hosts && echo ok",
    ]);
    assert_eq!(ok(&out), "ok\n");
    assert_eq!(ns.ok(sums), before);
    assert_eq!(ns.ok("ls -A /run/supervisor/files"), "");
    // A dead supervisor's files go with its record at the next gc.
    ns.ok("mkdir -p /run/supervisor/files/0123456789ab && touch /run/supervisor/files/0123456789ab/hosts");
    let out = ns.supervisor().arg("gc").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("files /run/supervisor/files/0123456789ab"),
        "{}",
        stdout(&out)
    );
    assert_eq!(ns.ok("ls -A /run/supervisor/files"), "");
}

#[test]
fn a_python_web_server_answers_without_waiting_for_dns() {
    let Some(ns) = host(
        "a_python_web_server_answers_without_waiting_for_dns",
        UNREACHABLE,
        None,
    ) else {
        return;
    };
    common::python3("a web server that looks its own name up (http.server)");
    spy_on_dns(&ns);
    // http.server looks up its own name before it serves: 5 s of DNS
    // timeouts when the host's /etc/hosts does not know the container.
    // The attempts' bound (30 s) is a hang guard.
    let script = "cd /tmp && python3 -m http.server 8000 >/dev/null 2>&1 & \
        for i in $(seq 600); do \
          printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -N 127.0.0.1 8000 2>/dev/null | head -n 1 | grep -q 200 \
            && echo answered && break; \
          sleep 0.05; \
        done; \
        kill $! 2>/dev/null";
    // On the bridge: DNS packets leave for a server that never answers.
    let out = ok(&ns.run(&["--", "sh", "-c", script]));
    assert_eq!(out, "answered\n");
    assert_eq!(dns_queries(&ns), 0, "DNS queries of the web server");
}
