//! Links in general: names, lookups, bringing up.

use futures_util::TryStreamExt;
use rtnetlink::packet_core::{
    DecodeError, NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
};
use rtnetlink::packet_route::link::LinkHeader;
use rtnetlink::packet_route::link::{
    InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{Handle, LinkGetRequest, LinkUnspec};

use super::{Error, is_errno};

/// The kernel's limit: IFNAMSIZ less the terminating NUL.
const IFNAME_MAX: usize = 15;

/// Why the kernel would refuse `name` for an interface, if it would.
pub fn ifname_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("empty")
    } else if name.len() > IFNAME_MAX {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("reserved")
    } else if name == "all" || name == "default" {
        // The names of /proc/sys/net/*/conf's own entries: the kernel
        // refuses them (EINVAL), and would do so only once the veth or
        // bridge is being made, an error naming that link instead.
        Some("reserved for the sysctls of every interface")
    } else if name
        .bytes()
        .any(|b| b == b'/' || b == b':' || kernel_isspace(b) || b == 0)
    {
        Some("contains '/', ':', a space or a NUL")
    } else if name.contains('%') {
        // The kernel takes a name with '%' for a template and makes the
        // link under the first free name it gives (`br%d`: br0), or refuses
        // it (EINVAL): either way no link of that name, and one made under
        // another name would be left behind by whoever looks for this one.
        Some("contains '%', which the kernel takes for a template of a free name (br%d makes br0)")
    } else if name.bytes().any(|b| b.is_ascii_control()) {
        // The kernel takes them; every message naming the link would carry
        // them to a terminal or a log (an ESC starts an escape sequence).
        Some("contains a control character")
    } else {
        None
    }
}

/// The kernel's `isspace` (lib/ctype.c), which its dev_valid_name uses: the
/// ASCII white space with the vertical tab, and Latin-1's no-break space,
/// 0xA0, which is also the last byte of UTF-8 characters such as 'à'.
fn kernel_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// Checks a name the kernel will take for an interface.
pub fn check_ifname(name: &str) -> Result<(), Error> {
    match ifname_problem(name) {
        Some(reason) => Err(Error::IfName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// What the supervisor needs to know about an existing link.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<InfoKind>,
    pub up: bool,
    /// IFF_RUNNING: up with its carrier on, as the kernel's link watcher
    /// last saw it (it also tells a bridge that its port may forward).
    pub running: bool,
    /// The bridge it is attached to, by index.
    pub controller: Option<u32>,
    /// The id, in ours, of the network namespace its peer is in
    /// (IFLA_LINK_NETNSID); -1 once the kernel has taken back the id of a
    /// namespace it is tearing down. None: the peer is in ours, or it has
    /// none.
    pub peer_netns: Option<i32>,
    /// Its hardware address (empty for links without one).
    pub mac: Vec<u8>,
}

impl Link {
    pub(crate) fn from_message(msg: LinkMessage) -> Link {
        let mut name = String::new();
        let mut kind = None;
        let mut controller = None;
        let mut peer_netns = None;
        let mut mac = Vec::new();
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = n,
                LinkAttribute::LinkNetNsId(id) => peer_netns = Some(id),
                LinkAttribute::Address(address) => mac = address,
                LinkAttribute::Controller(index) => controller = Some(index),
                LinkAttribute::LinkInfo(infos) => {
                    kind = infos.into_iter().find_map(|info| match info {
                        LinkInfo::Kind(kind) => Some(kind),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        Link {
            index: msg.header.index,
            name,
            kind,
            up: msg.header.flags.contains(LinkFlags::Up),
            running: msg.header.flags.contains(LinkFlags::Running),
            controller,
            peer_netns,
            mac,
        }
    }
}

/// rtnetlink.h's message type of a link (an answer to a lookup).
pub(super) const RTM_NEWLINK: u16 = 16;
/// The attributes of a link message that [`Link::from_message`] reads
/// (link.h's IFLA_*), and IFLA_INFO_KIND inside IFLA_LINKINFO.
const IFLA_ADDRESS: u16 = 1;
pub(super) const IFLA_IFNAME: u16 = 3;
pub(super) const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
pub(super) const IFLA_LINK_NETNSID: u16 = 37;
const IFLA_INFO_KIND: u16 = 1;
/// The link header before the attributes (struct ifinfomsg).
const LINK_HEADER_LEN: usize = 16;

/// An RTM_NEWLINK message (its payload, after the netlink header) with
/// only what [`Link::from_message`] reads: the header, the name, the
/// hardware address, the bridge, the peer's namespace id and the kind.
///
/// A lookup's answer holds some forty attributes more (the kind's own
/// data, every IPv4 and IPv6 setting of the link, its statistics) that
/// nothing here reads, and decoding them all (each a value of its own,
/// many allocated) took as much of a CNI ADD's CPU as the kernel's work
/// for the three lookups it answers on the spot (perf).
pub(super) fn brief_message(payload: &[u8]) -> Result<LinkMessage, DecodeError> {
    let header = LinkHeader::parse(payload)?;
    let family = header.interface_family;
    let mut message = LinkMessage::default();
    message.header = header;
    let attributes = payload.get(LINK_HEADER_LEN..).unwrap_or_default();
    for nla in NlasIterator::new(attributes) {
        let nla = nla?;
        match nla.kind() {
            IFLA_ADDRESS | IFLA_IFNAME | IFLA_MASTER | IFLA_LINK_NETNSID => message
                .attributes
                .push(LinkAttribute::parse_with_param(&nla, family)?),
            IFLA_LINKINFO => {
                for info in NlasIterator::new(nla.value()) {
                    let info: NlaBuffer<&[u8]> = info?;
                    if info.kind() == IFLA_INFO_KIND {
                        let kind = InfoKind::parse(&info)?;
                        message
                            .attributes
                            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(message)
}

/// What asks the kernel to leave a link's statistics out of its answer
/// (IFLA_EXT_MASK with RTEXT_FILTER_SKIP_STATS), which nothing here
/// reads. Kernel 6.18 leaves out IPv6's counters (IFLA_INET6_STATS and
/// ICMP6STATS, each summed over every CPU: 368 of lo's 1,468 bytes) but
/// still sends IFLA_STATS and IFLA_STATS64 (newer kernels may not).
pub(super) fn without_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

/// The lookup of link `index`, without its statistics.
pub(super) fn lookup_message(index: u32) -> LinkMessage {
    let mut message = LinkUnspec::new_with_index(index).build();
    message.attributes.push(without_stats());
    message
}

/// The lookup of the link named `name`, without its statistics.
fn name_lookup_message(name: &str) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    message.attributes.push(without_stats());
    message
}

/// A link request of the connection's, without statistics (see
/// [`without_stats`]); for every family, as without the mask.
fn get(handle: &Handle) -> LinkGetRequest {
    handle
        .link()
        .get()
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
}

/// The link named `name`, or None when there is none.
pub(crate) async fn by_name(handle: &Handle, name: &str) -> Result<Option<Link>, Error> {
    lookup(
        get(handle).match_name(name).execute().try_next().await,
        name,
    )
}

/// The lookup of link `name`, to be answered on the spot (see `direct`
/// and `Direct::ask_all`).
pub(crate) fn lookup_by_name(name: &str) -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(name_lookup_message(name))
}

/// The link the answers to [`lookup_by_name`] describe.
pub(crate) fn from_lookup(
    answers: std::io::Result<Vec<RouteNetlinkMessage>>,
    name: &str,
) -> Result<Option<Link>, Error> {
    match answers {
        Ok(answers) => Ok(answers.into_iter().find_map(|answer| match answer {
            RouteNetlinkMessage::NewLink(msg) => Some(Link::from_message(msg)),
            _ => None,
        })),
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(err) => Err(Error::direct("looking up link", name)(err)),
    }
}

/// The link with index `index`, or None when there is none.
pub(crate) async fn by_index(handle: &Handle, index: u32) -> Result<Option<Link>, Error> {
    let object = format!("#{index}");
    lookup(
        get(handle).match_index(index).execute().try_next().await,
        &object,
    )
}

/// Every link.
pub(crate) async fn all(handle: &Handle) -> Result<Vec<Link>, Error> {
    let messages: Vec<LinkMessage> = get(handle)
        .execute()
        .try_collect()
        .await
        .map_err(Error::request("listing", "links"))?;
    Ok(messages.into_iter().map(Link::from_message).collect())
}

fn lookup(
    reply: Result<Option<LinkMessage>, rtnetlink::Error>,
    object: &str,
) -> Result<Option<Link>, Error> {
    match reply {
        Ok(msg) => Ok(msg.map(Link::from_message)),
        Err(err) if is_errno(&err, libc::ENODEV) => Ok(None),
        Err(err) => Err(Error::request("looking up link", object)(err)),
    }
}

/// Brings link `index` up; `name` is for errors.
pub(crate) async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<(), Error> {
    handle
        .link()
        .change(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(Error::request("bringing up", name))
}

#[cfg(test)]
mod tests {
    use super::super::direct::Direct;
    use super::*;
    use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec};

    /// [`by_name`], answered on the spot (see `direct`).
    fn by_name_direct(direct: &mut Direct, name: &str) -> Result<Option<Link>, Error> {
        from_lookup(direct.ask(lookup_by_name(name), false), name)
    }

    /// Whether `message` carries the link's IPv6 counters, the statistics
    /// a mask of RTEXT_FILTER_SKIP_STATS leaves out on every kernel.
    fn has_ipv6_stats(message: &LinkMessage) -> bool {
        message.attributes.iter().any(|a| match a {
            LinkAttribute::AfSpecUnspec(specs) => specs.iter().any(|spec| match spec {
                AfSpecUnspec::Inet6(inet6) => inet6
                    .iter()
                    .any(|a| matches!(a, AfSpecInet6::Stats(_) | AfSpecInet6::Icmp6Stats(_))),
                _ => false,
            }),
            _ => false,
        })
    }

    /// The answers to every kind of link request made here, for lo, in a
    /// network namespace of their own; None, said loudly, without root.
    fn answers_for_lo() -> Option<Vec<LinkMessage>> {
        crate::scratch::in_own_netns("answers_for_lo", || {
            let mut direct = Direct::open().unwrap().with_whole_links();
            let mut answers: Vec<LinkMessage> = [lookup_message(1), name_lookup_message("lo")]
                .into_iter()
                .flat_map(|m| direct.ask(RouteNetlinkMessage::GetLink(m), false).unwrap())
                .filter_map(|answer| match answer {
                    RouteNetlinkMessage::NewLink(msg) => Some(msg),
                    _ => None,
                })
                .collect();
            with_handle(async |handle| {
                for request in [
                    get(handle).match_name("lo"),
                    get(handle).match_index(1),
                    get(handle),
                ] {
                    let got: Vec<LinkMessage> = request.execute().try_collect().await.unwrap();
                    answers.extend(got);
                }
            });
            answers
        })
    }

    /// Runs `work` with an rtnetlink connection, on a runtime of its own.
    fn with_handle<T>(work: impl AsyncFnOnce(&Handle) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            tokio::spawn(connection);
            work(&handle).await
        })
    }

    #[test]
    fn link_lookups_and_dumps_come_without_statistics() {
        let Some(answers) = answers_for_lo() else {
            return;
        };
        assert_eq!(answers.len(), 5, "{answers:?}");
        assert!(answers.iter().all(|a| a.header.index == 1), "{answers:?}");
        assert!(!answers.iter().any(has_ipv6_stats), "{answers:?}");
    }

    #[test]
    fn a_brief_link_answer_holds_everything_a_link_is_read_for() {
        let test = "a_brief_link_answer_holds_everything_a_link_is_read_for";
        let compared = crate::scratch::in_own_netns(test, || {
            with_handle(async |handle| {
                let bridge = rtnetlink::LinkBridge::new("brt0").build();
                handle.link().add(bridge).execute().await.unwrap();
                let index = by_name(handle, "brt0").await.unwrap().unwrap().index;
                let veth = rtnetlink::LinkVeth::new("vt0", "vt1")
                    .controller(index)
                    .build();
                handle.link().add(veth).execute().await.unwrap();
            });
            let mut whole = Direct::open().unwrap().with_whole_links();
            let mut brief = Direct::open().unwrap();
            ["lo", "brt0", "vt0", "vt1"].map(|name| {
                let read = |direct: &mut Direct| {
                    format!("{:?}", by_name_direct(direct, name).unwrap().unwrap())
                };
                (read(&mut whole), read(&mut brief))
            })
        });
        let Some(compared) = compared else {
            return;
        };
        for (whole, brief) in &compared {
            assert_eq!(brief, whole);
        }
        // Not alike by being empty: the bridge's kind and MAC, its port's.
        assert!(compared[1].1.contains("Some(Bridge)"), "{compared:?}");
        assert!(compared[2].1.contains("controller: Some("), "{compared:?}");
        assert!(compared[2].1.contains("Some(Veth)"), "{compared:?}");
    }

    #[test]
    fn a_lookup_and_a_dump_asked_together_each_get_their_own_answers() {
        let test = "a_lookup_and_a_dump_asked_together_each_get_their_own_answers";
        let answered = crate::scratch::in_own_netns(test, || {
            // lo up: its local routes are something to dump.
            let up = std::process::Command::new("ip")
                .args(["link", "set", "lo", "up"])
                .status();
            assert!(up.is_ok_and(|s| s.success()), "ip link set lo up");
            let mut direct = Direct::open().unwrap();
            let [missing, routes] = direct
                .ask_all([
                    (lookup_by_name("nosuch0"), false),
                    (super::super::route::dump_request(false), true),
                ])
                .unwrap();
            let [lo, again] = direct
                .ask_all([
                    (lookup_by_name("lo"), false),
                    (super::super::route::dump_request(false), true),
                ])
                .unwrap();
            (
                from_lookup(missing, "nosuch0").unwrap().map(|l| l.index),
                super::super::route::from_dump(routes).unwrap().len(),
                from_lookup(lo, "lo").unwrap().map(|l| l.index),
                super::super::route::from_dump(again).unwrap().len(),
                // The socket is left with nothing unread: the next ask
                // gets its own answer.
                by_name_direct(&mut direct, "lo").unwrap().map(|l| l.index),
            )
        });
        let Some((missing, routes, lo, again, next)) = answered else {
            return;
        };
        assert_eq!(missing, None, "ENODEV is the lookup's alone");
        assert!(routes > 0, "lo's local routes");
        assert_eq!(routes, again);
        assert_eq!(lo, Some(1));
        assert_eq!(next, Some(1));
    }

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        for good in [
            "sv0",
            "eth0",
            "sv0123456789ab",
            "a.b-c_d",
            "123456789012345",
            ".hidden",
            "a\u{85}b",
        ] {
            assert!(check_ifname(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1234567890123456",
            ".",
            "..",
            "all",
            "default",
            "a/b",
            "a b",
            "a:b",
            "a\0",
            "a\x0bb",
            "a\x0cb",
            "br\u{e0}",
            "br\x1b[2J",
            "br\x7f",
            "br%d",
            "eth%",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_ifname("1234567890123456").unwrap_err().to_string(),
            "invalid interface name \"1234567890123456\": longer than 15 bytes"
        );
    }
}
