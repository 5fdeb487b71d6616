//! The names nft gives to numbers: protocols, services, conntrack states,
//! tcp flags, fib address types, icmp codes.
//!
//! nft looks protocols and services up in /etc/protocols and /etc/services;
//! the loader carries a fixed table of the common ones instead, so a ruleset
//! means the same on every host. Numbers always work.

/// `meta l4proto` / `ip protocol` names (IANA numbers).
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipencap", 4),
    ("tcp", 6),
    ("udp", 17),
    ("dccp", 33),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("ospf", 89),
    ("pim", 103),
    ("vrrp", 112),
    ("l2tp", 115),
    ("sctp", 132),
    ("udplite", 136),
];

/// Port names, as /etc/services gives them.
pub const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("bootps", 67),
    ("bootpc", 68),
    ("tftp", 69),
    ("http", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("sunrpc", 111),
    ("ntp", 123),
    ("netbios-ssn", 139),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("bgp", 179),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("syslog", 514),
    ("submission", 587),
    ("ldaps", 636),
    ("domain-s", 853),
    ("rsync", 873),
    ("imaps", 993),
    ("pop3s", 995),
    ("openvpn", 1194),
    ("nfs", 2049),
    ("mysql", 3306),
    ("ms-wbt-server", 3389),
    ("postgresql", 5432),
    ("x11", 6000),
    ("http-alt", 8080),
    ("git", 9418),
];

/// `ct state` bits (NF_CT_STATE_*).
pub const CT_STATES: &[(&str, u32)] = &[
    ("invalid", 1),
    ("established", 2),
    ("related", 4),
    ("new", 8),
    ("untracked", 64),
];

/// `ct status` bits (IPS_*).
pub const CT_STATUSES: &[(&str, u32)] = &[
    ("expected", 1),
    ("seen-reply", 2),
    ("assured", 4),
    ("confirmed", 8),
    ("snat", 16),
    ("dnat", 32),
    ("dying", 512),
];

/// `ct direction` values (IP_CT_DIR_*).
pub const CT_DIRECTIONS: &[(&str, u8)] = &[("original", 0), ("reply", 1)];

/// `tcp flags` bits.
pub const TCP_FLAGS: &[(&str, u32)] = &[
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ecn", 0x40),
    ("cwr", 0x80),
];

/// `fib ... type` values (RTN_*).
pub const FIB_ADDR_TYPES: &[(&str, u32)] = &[
    ("unspec", 0),
    ("unicast", 1),
    ("local", 2),
    ("broadcast", 3),
    ("anycast", 4),
    ("multicast", 5),
    ("blackhole", 6),
    ("unreachable", 7),
    ("prohibit", 8),
];

/// `meta nfproto` values (NFPROTO_*).
pub const NF_PROTOS: &[(&str, u32)] = &[("ipv4", 2), ("ipv6", 10)];

/// `meta pkttype` names (PACKET_*); nft prints 0 as `host`.
pub const PKT_TYPES: &[(&str, u32)] = &[
    ("host", 0),
    ("unicast", 0),
    ("broadcast", 1),
    ("multicast", 2),
    ("other", 3),
];

/// `ether type` / `meta protocol` / `arp ptype` names (ETH_P_*).
pub const ETHER_TYPES: &[(&str, u16)] = &[
    ("ip", 0x0800),
    ("arp", 0x0806),
    ("ip6", 0x86dd),
    ("vlan", 0x8100),
];

/// `arp operation` names (ARPOP_*).
pub const ARP_OPS: &[(&str, u16)] = &[
    ("request", 1),
    ("reply", 2),
    ("rrequest", 3),
    ("rreply", 4),
    ("inrequest", 8),
    ("inreply", 9),
    ("nak", 10),
];

/// `icmp type` names, as nft 1.0.6 knows them (`nft describe icmp type`).
pub const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("info-request", 15),
    ("info-reply", 16),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// `reject with icmp type CODE`, also the `icmp code` names (`nft describe
/// icmp code`).
pub const ICMP_CODES: &[(&str, u8)] = &[
    ("net-unreachable", 0),
    ("host-unreachable", 1),
    ("prot-unreachable", 2),
    ("port-unreachable", 3),
    ("frag-needed", 4),
    ("net-prohibited", 9),
    ("host-prohibited", 10),
    ("admin-prohibited", 13),
];

/// `icmpv6 type` names, as nft 1.0.6 knows them (`nft describe icmpv6
/// type`).
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("mld-listener-query", 130),
    ("mld-listener-report", 131),
    ("mld-listener-done", 132),
    ("mld-listener-reduction", 132),
    ("nd-router-solicit", 133),
    ("nd-router-advert", 134),
    ("nd-neighbor-solicit", 135),
    ("nd-neighbor-advert", 136),
    ("nd-redirect", 137),
    ("router-renumbering", 138),
    ("ind-neighbor-solicit", 141),
    ("ind-neighbor-advert", 142),
    ("mld2-listener-report", 143),
];

/// `igmp type` names, as nft 1.0.6 knows them (`nft describe igmp type`).
pub const IGMP_TYPES: &[(&str, u8)] = &[
    ("membership-query", 0x11),
    ("membership-report-v1", 0x12),
    ("membership-report-v2", 0x16),
    ("membership-report-v3", 0x22),
    ("leave-group", 0x17),
];

/// `dscp` names (`nft describe ip6 dscp`).
pub const DSCP: &[(&str, u8)] = &[
    ("cs0", 0x00),
    ("cs1", 0x08),
    ("cs2", 0x10),
    ("cs3", 0x18),
    ("cs4", 0x20),
    ("cs5", 0x28),
    ("cs6", 0x30),
    ("cs7", 0x38),
    ("df", 0x00),
    ("be", 0x00),
    ("lephb", 0x01),
    ("af11", 0x0a),
    ("af12", 0x0c),
    ("af13", 0x0e),
    ("af21", 0x12),
    ("af22", 0x14),
    ("af23", 0x16),
    ("af31", 0x1a),
    ("af32", 0x1c),
    ("af33", 0x1e),
    ("af41", 0x22),
    ("af42", 0x24),
    ("af43", 0x26),
    ("va", 0x2c),
    ("ef", 0x2e),
];

/// `ecn` names.
pub const ECN: &[(&str, u8)] = &[("not-ect", 0), ("ect1", 1), ("ect0", 2), ("ce", 3)];

/// `reject with icmpv6 type CODE`, also the `icmpv6 code` names.
pub const ICMPV6_CODES: &[(&str, u8)] = &[
    ("no-route", 0),
    ("admin-prohibited", 1),
    ("addr-unreachable", 3),
    ("port-unreachable", 4),
    ("policy-fail", 5),
    ("reject-route", 6),
];

/// `reject with icmpx type CODE` (NFT_REJECT_ICMPX_*).
pub const ICMPX_CODES: &[(&str, u8)] = &[
    ("no-route", 0),
    ("port-unreachable", 1),
    ("host-unreachable", 2),
    ("admin-prohibited", 3),
];

pub fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The names of a table, for "expected one of ..." messages.
pub fn names<T>(table: &[(&str, T)]) -> String {
    table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The longest timeout the kernel takes, in milliseconds: it converts them
/// to nanoseconds in 64 bits and refuses (ERANGE) what does not fit
/// (`nf_msecs_to_jiffies64`). About 213,503 days.
pub const MAX_TIMEOUT_MS: u64 = u64::MAX / 1_000_000 - 1;

/// A duration as nft 1.0.6 reads them: `30s`, `1h30m`, `500ms`, `2d`,
/// units in the order d, h, m, s, ms, each at most once, each number at
/// most 8 digits, the whole within [`MAX_TIMEOUT_MS`]. In milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let invalid = || {
        format!(
            "invalid duration '{text}': write units in the order d, h, m, s, ms, each at most once (like 30s, 5m, 1h30m)"
        )
    };
    let mut total: u64 = 0;
    let mut rest = text;
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        if digits > 8 {
            // nft's own words for a number it will not take here.
            return Err(format!(
                "value too large: '{text}' (at most 8 digits per unit, as in nft)"
            ));
        }
        let value: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        let Some(index) = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
        else {
            return Err(invalid());
        };
        next_unit += index + 1;
        total = total.saturating_add(value.saturating_mul(UNITS[next_unit - 1].1));
        rest = &rest[unit_len..];
    }
    if total > MAX_TIMEOUT_MS {
        return Err(format!(
            "timeout '{text}' is too large: the kernel takes at most {MAX_TIMEOUT_MS} ms (about 213503 days)"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_add_their_parts() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("1d1h1m1s1ms"), Ok(90_061_001));
        assert!(parse_duration("12").is_err(), "nft wants a unit");
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    /// nft 1.0.6 refuses these (`nft -c`); the loader used to take them.
    #[test]
    fn durations_nft_refuses_are_refused() {
        for (text, says) in [
            ("1d1d1d1d", "each at most once"),
            ("1h1d", "in the order d, h, m, s, ms"),
            ("1s1m", "in the order"),
            ("1h30", "invalid duration"),
            ("000000001s", "value too large"),
            ("123456789s", "value too large"),
            ("213504d", "too large: the kernel takes at most"),
            ("1d99999999h", "too large: the kernel takes at most"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
        assert_eq!(parse_duration("213503d"), Ok(213_503 * 86_400_000));
        assert_eq!(parse_duration("99999999s"), Ok(99_999_999_000));
    }
}
