//! Words nft 1.0.6 refuses as table, chain, set and variable names.
//!
//! Measured, not guessed: every word of nft's man page and of libnftables'
//! strings was tried as `chain WORD`, `table ip WORD`, `set WORD` and
//! `define WORD` with `nft -c`; these are the ones it refused, the same in all
//! four places. `input`, `filter` or `nat` are fine names.

/// Sorted, for binary search.
const RESERVED: &[&str] = &[
    "accept",
    "add",
    "all",
    "and",
    "arp",
    "bridge",
    "cgroup",
    "chain",
    "comment",
    "constant",
    "continue",
    "counter",
    "cpu",
    "create",
    "ct",
    "day",
    "define",
    "delete",
    "describe",
    "device",
    "devices",
    "dnat",
    "drop",
    "dst",
    "dup",
    "dynamic",
    "ecn",
    "element",
    "elements",
    "ether",
    "exists",
    "expires",
    "exthdr",
    "fib",
    "flags",
    "flow",
    "flowtable",
    "flush",
    "frag",
    "fwd",
    "gc-interval",
    "get",
    "goto",
    "handle",
    "hbh",
    "hook",
    "hour",
    "ibriport",
    "ibrname",
    "icmp",
    "icmpv6",
    "iif",
    "iifgroup",
    "iifname",
    "iiftype",
    "include",
    "index",
    "inet",
    "insert",
    "interval",
    "ip",
    "ip6",
    "ipsec",
    "jhash",
    "jump",
    "limit",
    "list",
    "log",
    "lt",
    "map",
    "mark",
    "masquerade",
    "meta",
    "meter",
    "mh",
    "missing",
    "monitor",
    "netdev",
    "nftrace",
    "not",
    "notrack",
    "numgen",
    "obriport",
    "obrname",
    "offload",
    "oif",
    "oifgroup",
    "oifname",
    "oiftype",
    "or",
    "osf",
    "pkttype",
    "policy",
    "position",
    "priority",
    "queue",
    "quota",
    "random",
    "redefine",
    "redirect",
    "reject",
    "rename",
    "replace",
    "reset",
    "return",
    "rt",
    "rtclassid",
    "rule",
    "ruleset",
    "secmark",
    "set",
    "size",
    "skgid",
    "skuid",
    "snat",
    "socket",
    "srh",
    "symhash",
    "synproxy",
    "table",
    "tcp",
    "th",
    "time",
    "timeout",
    "tproxy",
    "type",
    "typeof",
    "udp",
    "undefine",
    "update",
    "vlan",
    "vmap",
    "xt",
];

/// Whether nft's scanner turns `word` into a keyword where a name is expected.
pub fn is_reserved(word: &str) -> bool {
    RESERVED.binary_search(&word).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_so_binary_search_works() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn statement_keywords_are_reserved_and_hook_names_are_not() {
        assert!(is_reserved("tcp"));
        assert!(is_reserved("accept"));
        assert!(!is_reserved("input"));
        assert!(!is_reserved("nat"));
    }
}
