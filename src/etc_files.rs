//! The container's own /etc/hostname, /etc/hosts and /etc/resolv.conf, as
//! docker gives each container: written by the supervisor under
//! `STATE_DIR/files/ID/` and bound over the host's paths in the container's
//! mount namespace only; the host's files are never changed. They go when
//! the container ends, or with its stale record (`reconcile`, `gc`).
//!
//! Without them the container shares the host's /etc/hosts, which does not
//! know its hostname: `getent hosts $(hostname)` then waits on DNS (12 s
//! with no server reachable), and so does every server that looks up its
//! own name at startup.
//!
//! resolv.conf is the host's with loopback nameservers removed (they would
//! be the container's own loopback), and IPv6 ones unless the container
//! has IPv6, link-local ones always; a systemd-resolved stub (127.0.0.53)
//! is replaced by resolved's upstream list, as docker does. `--dns`,
//! `--dns-search` and `--dns-option` replace the corresponding lines.

use crate::values::quoted;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// The host's resolver configuration, and resolved's upstream list.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
pub const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";
const RESOLVED_STUB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));

/// The three files, and where each goes in the container.
const FILES: [(&str, &str); 3] = [
    ("hostname", "/etc/hostname"),
    ("hosts", "/etc/hosts"),
    ("resolv.conf", "/etc/resolv.conf"),
];

/// `--add-host`, `--dns`, `--dns-search`, `--dns-option`, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameOptions {
    pub add_hosts: Vec<(String, IpAddr)>,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionError {
    #[error("invalid --add-host {}: expected NAME:IP (or NAME=IP), like db:172.16.0.9", quoted(.0))]
    AddHost(String),
    #[error("invalid --dns {}: not an IP address", quoted(.0))]
    Dns(String),
    #[error("invalid --dns-search {}: expected a domain name", quoted(.0))]
    DnsSearch(String),
    #[error("invalid --dns-option {}: expected one resolv.conf option, like ndots:2", quoted(.0))]
    DnsOption(String),
}

impl NameOptions {
    pub fn parse(
        add_hosts: &[String],
        dns: &[String],
        dns_search: &[String],
        dns_options: &[String],
    ) -> Result<NameOptions, OptionError> {
        let add_hosts = add_hosts
            .iter()
            .map(|entry| {
                let bad = || OptionError::AddHost(entry.clone());
                // NAME=IP, or NAME:IP split at the first ':' (IPv6 has more).
                let (name, ip) = entry
                    .split_once('=')
                    .or_else(|| entry.split_once(':'))
                    .ok_or_else(bad)?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                match (host_name_ok(name), ip.parse::<IpAddr>()) {
                    (true, Ok(ip)) => Ok((name.to_string(), ip)),
                    _ => Err(bad()),
                }
            })
            .collect::<Result<_, _>>()?;
        let dns = dns
            .iter()
            .map(|d| d.parse().map_err(|_| OptionError::Dns(d.clone())))
            .collect::<Result<_, _>>()?;
        for domain in dns_search {
            // "." is docker's way to say: no search domains.
            if domain != "." && !host_name_ok(domain.trim_end_matches('.')) {
                return Err(OptionError::DnsSearch(domain.clone()));
            }
        }
        for option in dns_options {
            if option.is_empty() || option.contains(char::is_whitespace) {
                return Err(OptionError::DnsOption(option.clone()));
            }
        }
        Ok(NameOptions {
            add_hosts,
            dns,
            dns_search: dns_search.to_vec(),
            dns_options: dns_options.to_vec(),
        })
    }
}

/// A host name as resolvers take it: dot-separated labels of letters,
/// digits, '-' and '_', at most 253 characters.
fn host_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// /etc/hosts: docker's loopback lines, the `--add-host` entries, then the
/// container's own names on its address (127.0.0.1 without a network).
pub fn hosts(
    hostname: &str,
    name: &str,
    address: Option<Ipv4Addr>,
    address6: Option<Ipv6Addr>,
    add_hosts: &[(String, IpAddr)],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for (host, ip) in add_hosts {
        out.push_str(&format!("{ip}\t{host}\n"));
    }
    let address = IpAddr::V4(address.unwrap_or(Ipv4Addr::LOCALHOST));
    let names = if name == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {name}")
    };
    for address in std::iter::once(address).chain(address6.map(IpAddr::V6)) {
        out.push_str(&format!("{address}\t{names}\n"));
    }
    out
}

/// The container's resolv.conf from the host's, and a warning when it has
/// no nameserver left. `ipv6`: the container has an IPv6 address.
pub fn resolv_conf(
    host: &str,
    resolved_upstream: Option<&str>,
    options: &NameOptions,
    ipv6: bool,
) -> (String, Option<String>) {
    let mut source = Resolv::parse(host);
    let mut from = HOST_RESOLV_CONF;
    if source.nameservers.contains(&RESOLVED_STUB) {
        if let Some(upstream) = resolved_upstream {
            source = Resolv::parse(upstream);
            from = RESOLVED_UPSTREAM;
        }
    }
    let host_servers = source.nameservers.len();
    // Loopback servers are the container's own loopback; IPv6 ones are
    // unreachable without IPv6 in the container, and link-local ones are
    // on a link the container is not on (docker drops all three).
    source.nameservers.retain(|ip| match ip {
        IpAddr::V4(ip) => !ip.is_loopback(),
        IpAddr::V6(ip) => {
            ipv6 && !ip.is_loopback() && !ip.is_unspecified() && !ip.is_unicast_link_local()
        }
    });
    let mut warning = None;
    if !options.dns.is_empty() {
        source.nameservers = options.dns.clone();
    } else if source.nameservers.is_empty() {
        warning = Some(if host_servers == 0 {
            format!("{from} has no nameserver: the container has no DNS (use --dns)")
        } else {
            format!(
                "every nameserver in {from} is a loopback or IPv6 address the container \
                 cannot reach: the container has no DNS (use --dns)"
            )
        });
    }
    if !options.dns_search.is_empty() {
        source.search = options
            .dns_search
            .iter()
            .filter(|d| *d != ".")
            .cloned()
            .collect();
    }
    if !options.dns_options.is_empty() {
        source.options = options.dns_options.clone();
    }
    (source.render(), warning)
}

/// The lines of resolv.conf that matter to the container.
#[derive(Debug, Default)]
struct Resolv {
    nameservers: Vec<IpAddr>,
    search: Vec<String>,
    options: Vec<String>,
    /// Other lines (sortlist, comments), kept as they are.
    other: Vec<String>,
}

impl Resolv {
    fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // A zone index (fe80::1%eth0) or garbage: not ours to use.
                    if let Some(Ok(ip)) = words.next().map(str::parse) {
                        r.nameservers.push(ip);
                    }
                }
                // The last search or domain line wins, as in the resolver.
                Some("search" | "domain") => r.search = words.map(String::from).collect(),
                Some("options") => r.options.extend(words.map(String::from)),
                Some(w) if w.starts_with(['#', ';']) => {}
                Some(_) => r.other.push(line.to_string()),
                None => {}
            }
        }
        r
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for ip in &self.nameservers {
            out.push_str(&format!("nameserver {ip}\n"));
        }
        if !self.search.is_empty() {
            out.push_str(&format!("search {}\n", self.search.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        for line in &self.other {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("writing the container's {}", path.display())]
pub struct WriteError {
    path: PathBuf,
    #[source]
    source: io::Error,
}

/// A container's directory of /etc files: `STATE_DIR/files/ID`.
#[derive(Debug, Clone)]
pub struct EtcFiles {
    dir: PathBuf,
}

impl EtcFiles {
    pub fn new(state_dir: &Path, id: &str) -> EtcFiles {
        EtcFiles {
            dir: files_dir(state_dir).join(id),
        }
    }

    /// (our file, the container path it is bound over), known before the
    /// files are written.
    pub fn binds(&self) -> impl Iterator<Item = (PathBuf, PathBuf)> + '_ {
        FILES
            .iter()
            .map(|(name, target)| (self.dir.join(name), PathBuf::from(target)))
    }

    /// Creates the three files empty, so the container can bind them before
    /// their contents are known: `write` fills them in place (the same
    /// inodes), before the container's command runs.
    pub fn create(&self) -> Result<(), WriteError> {
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(at(&self.dir))?;
        for (file, _) in FILES {
            let path = self.dir.join(file);
            fs::File::create(&path).map_err(at(&path))?;
        }
        Ok(())
    }

    /// Writes the three files (in place: a container may have bound them
    /// already); returns resolv.conf's warning, if any.
    pub fn write(
        &self,
        hostname: &str,
        name: &str,
        address: Option<Ipv4Addr>,
        address6: Option<Ipv6Addr>,
        options: &NameOptions,
    ) -> Result<Option<String>, WriteError> {
        let at = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WriteError { path, source }
        };
        fs::create_dir_all(&self.dir).map_err(at(&self.dir))?;
        let host = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
        let upstream = fs::read_to_string(RESOLVED_UPSTREAM).ok();
        let (resolv, warning) =
            resolv_conf(&host, upstream.as_deref(), options, address6.is_some());
        let contents = [
            format!("{hostname}\n"),
            hosts(hostname, name, address, address6, &options.add_hosts),
            resolv,
        ];
        for ((file, _), text) in FILES.iter().zip(contents) {
            let path = self.dir.join(file);
            fs::write(&path, text).map_err(at(&path))?;
        }
        Ok(warning)
    }

    /// Removes the directory; true when there was one.
    ///
    /// The three files by name, then the directory: remove_dir_all would
    /// open, stat and list it first (about 20 us more at every container's
    /// end, traced). Anything else found in it is removed all the same.
    pub fn remove(&self) -> io::Result<bool> {
        for (file, _) in FILES {
            match fs::remove_file(self.dir.join(file)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => break,
                _ => {}
            }
        }
        let removed = fs::remove_dir(&self.dir).or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Err(e),
            _ => fs::remove_dir_all(&self.dir),
        });
        match removed {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Where every container's files live.
pub fn files_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("files")
}

/// The ids that have a files directory.
pub fn ids(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(files_dir(state_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        add: &[&str],
        dns: &[&str],
        search: &[&str],
        opts: &[&str],
    ) -> Result<NameOptions, OptionError> {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        NameOptions::parse(&v(add), &v(dns), &v(search), &v(opts))
    }

    #[test]
    fn options_are_checked_and_bad_ones_named() {
        let o = parse(
            &["db:10.1.2.3", "v6=fd00::1", "x:[fd00::2]"],
            &["192.0.2.53"],
            &["example.test"],
            &["ndots:2"],
        )
        .unwrap();
        assert_eq!(o.add_hosts[0], ("db".into(), "10.1.2.3".parse().unwrap()));
        assert_eq!(o.add_hosts[1].1, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(o.add_hosts[2].1, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(
            parse(&["db"], &[], &[], &[]),
            Err(OptionError::AddHost("db".into()))
        );
        assert_eq!(
            parse(&["d b:1.2.3.4"], &[], &[], &[]),
            Err(OptionError::AddHost("d b:1.2.3.4".into()))
        );
        assert_eq!(
            parse(&["db:1.2.3"], &[], &[], &[]),
            Err(OptionError::AddHost("db:1.2.3".into()))
        );
        assert_eq!(
            parse(&[], &["dns.example"], &[], &[]),
            Err(OptionError::Dns("dns.example".into()))
        );
        assert_eq!(
            parse(&[], &[], &["a b"], &[]),
            Err(OptionError::DnsSearch("a b".into()))
        );
        assert_eq!(
            parse(&[], &[], &[], &["a b"]),
            Err(OptionError::DnsOption("a b".into()))
        );
        assert!(parse(&[], &[], &["."], &[]).is_ok());
    }

    #[test]
    fn hosts_maps_the_hostname_and_name_to_the_address_after_the_extra_entries() {
        let extra = [("db".to_string(), "10.1.2.3".parse().unwrap())];
        let h = hosts(
            "web",
            "c1",
            Some(Ipv4Addr::new(172, 16, 0, 2)),
            None,
            &extra,
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.ends_with("10.1.2.3\tdb\n172.16.0.2\tweb c1\n"), "{h}");
        let h = hosts("c1", "c1", None, None, &[]);
        assert!(
            h.ends_with("ff02::2\tip6-allrouters\n127.0.0.1\tc1\n"),
            "{h}"
        );
    }

    #[test]
    fn hosts_maps_the_names_to_the_ipv6_address_too_on_a_dual_stack_network() {
        let address6 = "fd53:7570:6572::2".parse().unwrap();
        let h = hosts(
            "web",
            "c1",
            Some(Ipv4Addr::new(172, 16, 0, 2)),
            Some(address6),
            &[],
        );
        assert!(
            h.ends_with("172.16.0.2\tweb c1\nfd53:7570:6572::2\tweb c1\n"),
            "{h}"
        );
    }

    #[test]
    fn loopback_nameservers_go_and_the_resolved_stub_becomes_its_upstream() {
        let none = NameOptions::default();
        let host = "# generated\nnameserver 127.0.0.53\nsearch lan\noptions edns0 trust-ad\n";
        let (r, w) = resolv_conf(
            host,
            Some("nameserver 192.0.2.1\nnameserver 127.0.0.1\nsearch corp\n"),
            &none,
            false,
        );
        assert_eq!(r, "nameserver 192.0.2.1\nsearch corp\n");
        assert_eq!(w, None);
        let (r, w) = resolv_conf(
            "nameserver 127.0.0.1\nnameserver ::1\nsearch lan\n",
            None,
            &none,
            false,
        );
        assert_eq!(r, "search lan\n");
        assert!(w.unwrap().contains("no DNS"));
        let (r, w) = resolv_conf("", None, &none, false);
        assert_eq!(r, "");
        assert!(w.unwrap().contains("has no nameserver"));
    }

    #[test]
    fn ipv6_nameservers_stay_when_the_container_has_ipv6_but_not_link_local_ones() {
        let none = NameOptions::default();
        let host = "nameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver fd00::53\n\
                    nameserver fe80::1\nnameserver fe80::2%eth0\nnameserver ::1\n";
        let (r, w) = resolv_conf(host, None, &none, true);
        assert_eq!(
            r,
            "nameserver 192.0.2.1\nnameserver 2001:db8::53\nnameserver fd00::53\n"
        );
        assert_eq!(w, None);
        let (r, _) = resolv_conf(host, None, &none, false);
        assert_eq!(r, "nameserver 192.0.2.1\n");
        let (r, w) = resolv_conf("nameserver fe80::1\n", None, &none, true);
        assert_eq!(r, "");
        assert!(w.unwrap().contains("no DNS"));
    }

    #[test]
    fn dns_options_replace_the_hosts_lines() {
        let o = parse(
            &[],
            &["192.0.2.53", "192.0.2.54"],
            &["a.test", "b.test"],
            &["ndots:3"],
        )
        .unwrap();
        let (r, w) = resolv_conf(
            "nameserver 127.0.0.1\nsearch lan\noptions edns0\n",
            None,
            &o,
            false,
        );
        assert_eq!(
            r,
            "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch a.test b.test\noptions ndots:3\n"
        );
        assert_eq!(w, None);
        let o = parse(&[], &[], &["."], &[]).unwrap();
        let (r, _) = resolv_conf("nameserver 192.0.2.1\nsearch lan\n", None, &o, false);
        assert_eq!(r, "nameserver 192.0.2.1\n");
    }

    #[test]
    fn files_are_written_under_the_id_and_removed() {
        let state = crate::scratch::Scratch::new("etc");
        let files = EtcFiles::new(&state, "abc123");
        files
            .write("h", "n", None, None, &NameOptions::default())
            .unwrap();
        assert_eq!(
            fs::read_to_string(files.dir().join("hostname")).unwrap(),
            "h\n"
        );
        assert!(
            fs::read_to_string(files.dir().join("hosts"))
                .unwrap()
                .contains("127.0.0.1\th n\n")
        );
        assert_eq!(ids(&state), ["abc123"]);
        let targets: Vec<_> = files.binds().map(|(_, t)| t).collect();
        assert_eq!(
            targets,
            [
                Path::new("/etc/hostname"),
                Path::new("/etc/hosts"),
                Path::new("/etc/resolv.conf")
            ]
        );
        assert!(files.remove().unwrap());
        assert!(!files.remove().unwrap());
    }

    #[test]
    fn a_files_directory_goes_whole_with_a_file_missing_or_one_more() {
        let state = crate::scratch::Scratch::new("etc-odd");
        let files = EtcFiles::new(&state, "abc123");
        files.create().unwrap();
        fs::remove_file(files.dir().join("hosts")).unwrap();
        fs::write(files.dir().join("stray"), "x").unwrap();
        fs::create_dir(files.dir().join("sub")).unwrap();
        fs::write(files.dir().join("sub/deeper"), "y").unwrap();
        assert!(files.remove().unwrap());
        assert!(!files.dir().exists());
        assert_eq!(ids(&state), Vec::<String>::new());
    }
}
