//! Links in general: names, lookups, bringing up.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkUnspec};

use super::direct::Direct;
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

/// The link named `name`, or None when there is none.
pub(crate) async fn by_name(handle: &Handle, name: &str) -> Result<Option<Link>, Error> {
    lookup(
        handle
            .link()
            .get()
            .match_name(name)
            .execute()
            .try_next()
            .await,
        name,
    )
}

/// [`by_name`], answered on the spot (see `direct`).
pub(crate) fn by_name_direct(direct: &mut Direct, name: &str) -> Result<Option<Link>, Error> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    match direct.ask(RouteNetlinkMessage::GetLink(message), false) {
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
        handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await,
        &object,
    )
}

/// Every link.
pub(crate) async fn all(handle: &Handle) -> Result<Vec<Link>, Error> {
    let messages: Vec<LinkMessage> = handle
        .link()
        .get()
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
    use super::*;

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
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_ifname("1234567890123456").unwrap_err().to_string(),
            "invalid interface name \"1234567890123456\": longer than 15 bytes"
        );
    }
}
