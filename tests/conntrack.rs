//! Conntrack entries of published ports are forgotten at teardown.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use supervisor::conntrack::{Forgotten, forget, forget_addresses_with};
use supervisor::values::Protocol as Transport;

fn conntrack(args: &str) -> String {
    let out = Command::new("conntrack")
        .args(args.split_whitespace())
        .output()
        .expect("conntrack (package conntrack) is installed");
    assert!(
        out.status.success(),
        "conntrack {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A UDP flow from 127.0.0.1:`sport` to host port `dport`, translated to
/// `reply_src`:8000.
fn insert(sport: u16, dport: u16, reply_src: &str) {
    conntrack(&format!(
        "-I -p udp -s 127.0.0.1 -d 127.0.0.1 --sport {sport} --dport {dport} \
         --reply-src {reply_src} --reply-dst 127.0.0.1 --reply-port-src 8000 \
         --reply-port-dst {sport} --timeout 100"
    ));
}

#[test]
fn only_the_entries_translated_to_the_container_on_its_ports_are_deleted() {
    common::in_fresh_netns(
        "only_the_entries_translated_to_the_container_on_its_ports_are_deleted",
        || {
            insert(5000, 8080, "172.16.0.2"); // ours: deleted
            insert(5001, 8080, "172.16.0.2"); // ours: deleted
            insert(5002, 8081, "172.16.0.2"); // another port of the same container: kept
            insert(5003, 8080, "172.16.0.3"); // the same port, another container: kept
            let container = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2))];
            forget(
                &[(Transport::Udp, 8080), (Transport::Tcp, 8081)],
                Some(&container),
            )
            .expect("forget");
            let left = conntrack("-L -p udp");
            assert!(
                !left.contains("sport=5000") && !left.contains("sport=5001"),
                "{left}"
            );
            assert!(
                left.contains("sport=5002") && left.contains("sport=5003"),
                "{left}"
            );
        },
    );
}

#[test]
fn nothing_to_forget_is_fine() {
    common::in_fresh_netns("nothing_to_forget_is_fine", || {
        let container = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 9))];
        forget(&[(Transport::Tcp, 80)], Some(&container)).unwrap();
        assert_eq!(forget(&[], None).unwrap(), Forgotten::WithoutWalk);
    });
}

#[test]
fn without_an_address_every_entry_of_the_port_goes() {
    common::in_fresh_netns("without_an_address_every_entry_of_the_port_goes", || {
        insert(5000, 8080, "172.16.0.2");
        insert(5001, 8080, "127.0.0.1"); // sent before anything was published
        insert(5002, 8081, "172.16.0.2");
        assert_eq!(
            forget(&[(Transport::Udp, 8080)], None).unwrap(),
            Forgotten::Walked(2)
        );
        let left = conntrack("-L -p udp");
        assert!(left.contains("sport=5002"), "{left}");
        assert!(
            !left.contains("sport=5000") && !left.contains("sport=5001"),
            "{left}"
        );
    });
}

/// An IPv6 UDP flow from [::1]:`sport` to host port `dport`, translated to
/// `reply_src`:8000.
fn insert6(sport: u16, dport: u16, reply_src: &str) {
    conntrack(&format!(
        "-I -p udp -s ::1 -d ::1 --sport {sport} --dport {dport} \
         --reply-src {reply_src} --reply-dst ::1 --reply-port-src 8000 \
         --reply-port-dst {sport} --timeout 100"
    ));
}

#[test]
fn a_dual_stack_containers_ipv6_entries_are_deleted_too() {
    common::in_fresh_netns(
        "a_dual_stack_containers_ipv6_entries_are_deleted_too",
        || {
            insert(5000, 8080, "172.16.0.2"); // ours, IPv4: deleted
            insert6(5001, 8080, "fd53:7570:6572::2"); // ours, IPv6: deleted
            insert6(5002, 8080, "fd53:7570:6572::3"); // another container's: kept
            let container = [
                IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)),
                "fd53:7570:6572::2".parse().unwrap(),
            ];
            assert_eq!(
                forget(&[(Transport::Udp, 8080)], Some(&container)).unwrap(),
                Forgotten::Walked(2)
            );
            let left = conntrack("-L -f ipv6 -p udp");
            assert!(!left.contains("sport=5001"), "{left}");
            assert!(left.contains("sport=5002"), "{left}");
            assert!(!conntrack("-L -p udp").contains("sport=5000"));
            // Without an address, every family's entries of the port.
            assert_eq!(
                forget(&[(Transport::Udp, 8080)], None).unwrap(),
                Forgotten::Walked(1)
            );
        },
    );
}

/// A netfilter netlink socket, as a DEL hands its own to the work after
/// its answer.
fn netfilter_socket() -> std::os::fd::OwnedFd {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_NETFILTER).unwrap();
    socket.connect(&netlink_sys::SocketAddr::new(0, 0)).unwrap();
    // SAFETY: the descriptor was just made and is moved out of `socket`.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(socket.into_raw_fd()) }
}

#[test]
fn an_address_given_back_loses_its_connections_out_and_in_and_no_one_elses() {
    common::in_fresh_netns(
        "an_address_given_back_loses_its_connections_out_and_in_and_no_one_elses",
        || {
            // Its own connection out, masqueraded to the host's address.
            conntrack(
                "-I -p udp -s 172.16.0.2 -d 192.0.2.2 --sport 4000 --dport 5000 \
                 --reply-src 192.0.2.2 --reply-dst 192.0.2.1 --reply-port-src 5000 \
                 --reply-port-dst 4000 --timeout 100",
            );
            insert(5001, 8080, "172.16.0.2"); // to it, through a published port
            insert(5002, 8080, "172.16.0.3"); // to another container
            conntrack(
                "-I -p udp -s 172.16.0.3 -d 192.0.2.2 --sport 4001 --dport 5000 \
                 --reply-src 192.0.2.2 --reply-dst 192.0.2.1 --reply-port-src 5000 \
                 --reply-port-dst 4001 --timeout 100",
            ); // another container's connection out
            let address = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2))];
            forget_addresses_with(netfilter_socket(), &address).unwrap();
            let left = conntrack("-L -p udp");
            assert!(
                !left.contains("sport=4000 ") && !left.contains("sport=5001 "),
                "{left}"
            );
            assert!(
                left.contains("sport=4001 ") && left.contains("sport=5002 "),
                "{left}"
            );
        },
    );
}

/// The kernel's conntrack hash has 262,144 buckets here: a dump walks
/// them all with bottom halves off (9-11 ms, no RCU grace period ending
/// meanwhile) even when nothing is tracked. An IPv4 address's connections
/// are forgotten by a flush the kernel filters itself, in both directions;
/// and only its own. (How long each takes, benches/conntrack.rs measures.)
#[test]
fn forgetting_an_ipv4_addresss_connections_walks_no_table_and_leaves_the_others() {
    common::in_fresh_netns(
        "forgetting_an_ipv4_addresss_connections_walks_no_table_and_leaves_the_others",
        || {
            let address = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2))];
            assert_eq!(
                forget_addresses_with(netfilter_socket(), &address).unwrap(),
                Forgotten::WithoutWalk,
                "with nothing tracked"
            );
            insert(5001, 8080, "172.16.0.2"); // to it
            insert(5002, 8080, "172.16.0.3"); // to another container
            conntrack(
                "-I -p tcp -s 172.16.0.2 -d 192.0.2.2 --sport 4000 --dport 5000 \
                 --reply-src 192.0.2.2 --reply-dst 192.0.2.1 --reply-port-src 5000 \
                 --reply-port-dst 4000 --state ESTABLISHED --timeout 100",
            ); // its own TCP connection out
            assert_eq!(
                forget_addresses_with(netfilter_socket(), &address).unwrap(),
                Forgotten::WithoutWalk
            );
            let left = conntrack("-L");
            assert!(
                !left.contains("sport=5001 ") && !left.contains("sport=4000 "),
                "{left}"
            );
            assert!(left.contains("sport=5002 "), "{left}");
        },
    );
}

/// The kernel's filter inverts IPv6 source addresses (6.18): a flush
/// filtered by fd00::2 deleted fd00::3's entries and kept fd00::2's. A dual
/// stack attachment's addresses are forgotten through the dump instead.
#[test]
fn a_dual_stack_addresss_ipv6_connections_go_and_no_one_elses() {
    common::in_fresh_netns(
        "a_dual_stack_addresss_ipv6_connections_go_and_no_one_elses",
        || {
            insert6(5003, 8080, "fd00::2"); // to it
            insert6(5004, 8080, "fd00::3"); // to another container
            let addresses = [
                IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2)),
                "fd00::2".parse().unwrap(),
            ];
            assert_eq!(
                forget_addresses_with(netfilter_socket(), &addresses).unwrap(),
                Forgotten::Walked(1)
            );
            let left = conntrack("-L -f ipv6");
            assert!(!left.contains("sport=5003 "), "{left}");
            assert!(left.contains("sport=5004 "), "{left}");
        },
    );
}

/// Around a container's published ports: its entries, and the others a
/// forgetting must leave.
fn insert_around_published_ports() {
    insert(5000, 8080, "172.16.0.2"); // to it through 8080: forgotten
    insert(5001, 8080, "172.16.0.3"); // the same port, another container
    insert(5002, 8081, "172.16.0.2"); // another of its ports, not forgotten
    conntrack(
        "-I -p tcp -s 127.0.0.1 -d 127.0.0.1 --sport 5003 --dport 8080 \
         --reply-src 172.16.0.2 --reply-dst 127.0.0.1 --reply-port-src 8000 \
         --reply-port-dst 5003 --state ESTABLISHED --timeout 100",
    ); // to it, another protocol
    conntrack(
        "-I -p udp -s 172.16.0.2 -d 192.0.2.2 --sport 4000 --dport 8080 \
         --reply-src 192.0.2.2 --reply-dst 192.0.2.1 --reply-port-src 8080 \
         --reply-port-dst 4000 --timeout 100",
    ); // its own flow out to a peer's 8080
    conntrack(
        "-I -p udp -s 192.0.2.2 -d 172.16.0.2 --sport 5004 --dport 8080 \
         --reply-src 172.16.0.2 --reply-dst 192.0.2.2 --reply-port-src 8080 \
         --reply-port-dst 5004 --timeout 100",
    ); // routed straight to it on 8080: forgotten (the walk deletes it too)
}

/// The source ports of the entries left, sorted.
fn left_sports() -> Vec<String> {
    let mut left: Vec<String> = conntrack("-L")
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("sport=")))
        .map(str::to_string)
        .collect();
    left.sort();
    left
}

/// The exit of a container publishing UDP forgets its ports' entries. For
/// an IPv4 container the kernel does it itself, with a flush filtered by
/// protocol and port (the original direction) and the container's address
/// (where replies come from): no walk of the table (262,144 buckets, with
/// bottom halves off), and exactly the entries the walk deletes.
#[test]
fn forgetting_an_ipv4_containers_ports_walks_no_table_and_deletes_what_the_walk_deletes() {
    common::in_fresh_netns(
        "forgetting_an_ipv4_containers_ports_walks_no_table_and_deletes_what_the_walk_deletes",
        || {
            let ports = [(Transport::Udp, 8080)];
            let container = [IpAddr::V4(Ipv4Addr::new(172, 16, 0, 2))];
            insert_around_published_ports();
            assert_eq!(
                forget(&ports, Some(&container)).unwrap(),
                Forgotten::WithoutWalk
            );
            let filtered = left_sports();
            assert_eq!(
                filtered,
                ["sport=4000", "sport=5001", "sport=5002", "sport=5003"],
                "{filtered:?}"
            );
            // The walk, which an IPv6 address among the container's takes.
            conntrack("-F");
            insert_around_published_ports();
            let dual_stack = [container[0], "fd00::2".parse().unwrap()];
            assert_eq!(
                forget(&ports, Some(&dual_stack)).unwrap(),
                Forgotten::Walked(2)
            );
            assert_eq!(left_sports(), filtered);
        },
    );
}
