//! Telling a typo from nft the loader does not support, and suggesting what
//! was meant: `tcp dprot` is a typo of `tcp dport`, `limit rate 10/second`
//! is valid nft this loader does not read, `@tcp_prots` is near the
//! declared `@tcp_ports`.

/// Statements and match words nft 1.0.6 has that this loader does not read.
const NFT_ONLY_WORDS: &[&str] = &[
    "limit", "quota", "meter", "queue", "notrack", "dup", "fwd", "synproxy", "tproxy", "flow",
    "numgen", "jhash", "symhash", "osf", "rt", "exthdr", "socket", "vlan", "sctp", "dccp", "igmp",
    "ah", "esp", "comp", "udplite", "ipsec", "xfrm", "secmark", "tunnel", "frag", "hbh", "mh",
    "srh", "dst", "gre", "vxlan", "geneve", "inner", "update", "add", "delete", "set", "ct",
    "meta", "counter", "last", "cgroupv2", "dnat", "snat",
];

/// Words that start a statement or match this loader reads.
pub const STATEMENT_WORDS: &[&str] = &[
    "iifname",
    "oifname",
    "iif",
    "oif",
    "mark",
    "meta",
    "ip",
    "ip6",
    "icmp",
    "icmpv6",
    "tcp",
    "udp",
    "th",
    "ct",
    "fib",
    "ether",
    "arp",
    "counter",
    "log",
    "accept",
    "drop",
    "return",
    "continue",
    "jump",
    "goto",
    "reject",
    "masquerade",
    "snat",
    "dnat",
    "redirect",
    "comment",
];

/// Every field nft 1.0.6 knows after a protocol word (the loader reads
/// some of them).
pub fn nft_fields(protocol: &str) -> &'static [&'static str] {
    match protocol {
        "ip" => &[
            "version",
            "hdrlength",
            "dscp",
            "ecn",
            "length",
            "id",
            "frag-off",
            "ttl",
            "protocol",
            "checksum",
            "saddr",
            "daddr",
            "option",
        ],
        "ip6" => &[
            "version",
            "dscp",
            "ecn",
            "flowlabel",
            "length",
            "nexthdr",
            "hoplimit",
            "saddr",
            "daddr",
        ],
        "tcp" => &[
            "sport", "dport", "sequence", "ackseq", "doff", "reserved", "flags", "window",
            "checksum", "urgptr", "option",
        ],
        "udp" => &["sport", "dport", "length", "checksum"],
        "icmp" => &[
            "type", "code", "checksum", "id", "sequence", "gateway", "mtu",
        ],
        "icmpv6" => &[
            "type",
            "code",
            "checksum",
            "mtu",
            "id",
            "sequence",
            "max-delay",
        ],
        "th" => &["sport", "dport"],
        "meta" => &[
            "length",
            "nfproto",
            "l4proto",
            "protocol",
            "priority",
            "mark",
            "iif",
            "iifname",
            "iiftype",
            "oif",
            "oifname",
            "oiftype",
            "skuid",
            "skgid",
            "nftrace",
            "rtclassid",
            "ibriport",
            "obriport",
            "ibrname",
            "obrname",
            "pkttype",
            "cpu",
            "iifgroup",
            "oifgroup",
            "cgroup",
            "random",
            "ipsec",
            "secpath",
            "iifkind",
            "oifkind",
            "ibrpvid",
            "ibrvproto",
            "time",
            "day",
            "hour",
            "secmark",
            "sdif",
            "sdifname",
            "broute",
        ],
        "ct" => &[
            "state",
            "direction",
            "status",
            "mark",
            "expiration",
            "helper",
            "l3proto",
            "saddr",
            "daddr",
            "protocol",
            "proto-src",
            "proto-dst",
            "label",
            "bytes",
            "packets",
            "avgpkt",
            "zone",
            "event",
            "id",
            "original",
            "reply",
        ],
        "ether" => &["saddr", "daddr", "type"],
        "arp" => &[
            "htype",
            "ptype",
            "hlen",
            "plen",
            "operation",
            "saddr",
            "daddr",
        ],
        _ => &[],
    }
}

/// Whether `word` is nft syntax (a statement or match) this loader does not
/// read.
pub fn is_nft_only(word: &str) -> bool {
    NFT_ONLY_WORDS.contains(&word)
}

/// Edit distance (insertions, deletions, substitutions, and swaps of two
/// neighbours, which typos are full of).
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Names longer than this are never typos of a keyword; keeps it cheap.
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate nearest to `word`, if one is near enough to be what was
/// meant: at most 1 edit for short words, 2 from five characters on.
pub fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = if word.chars().count() >= 5 { 2 } else { 1 };
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `; did you mean 'X'?` when a candidate is near, else nothing.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
    prefix: &str,
) -> String {
    match nearest(word, candidates) {
        Some(near) => format!("; did you mean '{prefix}{near}'?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_near_and_other_words_are_not() {
        assert_eq!(distance("dprot", "dport"), 1);
        assert_eq!(distance("acept", "accept"), 1);
        assert_eq!(nearest("dprot", ["sport", "dport", "flags"]), Some("dport"));
        assert_eq!(
            nearest("tcp_prots", ["tcp_ports", "udp_ports"]),
            Some("tcp_ports")
        );
        assert_eq!(nearest("limit", STATEMENT_WORDS.iter().copied()), None);
        assert_eq!(nearest("x", ["y"]), Some("y"));
        assert_eq!(nearest("xy", ["ab"]), None);
        assert_eq!(distance(&"a".repeat(300), "a"), usize::MAX);
    }
}
