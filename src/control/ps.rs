//! `supervisor ps`: the running containers, as a table, as JSON or through
//! a template, optionally filtered by name or label.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;

use super::Error;
use super::template::{Field, Template};
use crate::state::{Entry, PublishedPort, Record, Store};
use crate::values::{Bracketed, Port, format_bytes, format_cpus};

/// How `ps` prints.
#[derive(Debug, Clone, Default)]
pub struct PsOptions {
    /// `--filter` values: `name=SUBSTRING`, `label=KEY` or `label=KEY=VALUE`.
    pub filters: Vec<String>,
    /// `-q`: ids only, one a line.
    pub quiet: bool,
    /// `--json`: one pretty array.
    pub json: bool,
    /// `--format`: `table`, `json` (one object a line) or a template.
    pub format: Option<String>,
}

/// The `--filter`s, docker's way: a container must match one of the name
/// filters (if any) and every label filter.
#[derive(Debug, Default, PartialEq, Eq)]
struct Filters {
    names: Vec<String>,
    labels: Vec<(String, Option<String>)>,
}

impl Filters {
    fn parse(filters: &[String]) -> Result<Filters, Error> {
        let mut parsed = Filters::default();
        for filter in filters {
            match filter.split_once('=') {
                Some(("name", name)) => parsed.names.push(name.to_string()),
                Some(("label", label)) if !label.is_empty() && !label.starts_with('=') => {
                    let (key, value) = match label.split_once('=') {
                        Some((key, value)) => (key, Some(value.to_string())),
                        None => (label, None),
                    };
                    parsed.labels.push((key.to_string(), value));
                }
                _ => return Err(Error::Filter(filter.clone())),
            }
        }
        Ok(parsed)
    }

    fn matches(&self, record: &Record) -> bool {
        let name = self.names.is_empty() || self.names.iter().any(|n| record.name.contains(n));
        let labels = self.labels.iter().all(|(key, value)| {
            record
                .labels
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| want == v))
        });
        name && labels
    }
}

/// What `--format` asked for.
enum Format {
    Table,
    Pretty,
    Lines,
    Template(Template),
}

impl Format {
    fn of(options: &PsOptions) -> Result<Format, Error> {
        Ok(match options.format.as_deref() {
            _ if options.json => Format::Pretty,
            None | Some("table") => Format::Table,
            Some("json") => Format::Lines,
            Some(template) => Format::Template(Template::parse(template)?),
        })
    }
}

/// One container in `ps --json`: a stable shape for scripts, apart from the
/// record's.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    id: &'a str,
    /// The supervisor's pid.
    pid: u32,
    container_pid: Option<u32>,
    /// `bridge`, `none` or `container:NAME`; null for records of earlier
    /// versions.
    network: Option<&'a str>,
    address: Option<Ipv4Addr>,
    /// On a dual-stack network.
    address6: Option<Ipv6Addr>,
    ports: &'a [PublishedPort],
    /// Seconds since the Unix epoch.
    started_at: u64,
    uptime_secs: u64,
    command: &'a [String],
    labels: &'a BTreeMap<String, String>,
    /// `--memory` in bytes, `--cpus` in billionths, `--pids-limit`; null
    /// when unlimited.
    memory: Option<u64>,
    nano_cpus: Option<u64>,
    pids_limit: Option<u64>,
}

impl<'a> Row<'a> {
    fn new(record: &'a Record) -> Row<'a> {
        let limits = record
            .resources
            .as_ref()
            .map(|l| l.limits)
            .unwrap_or_default();
        Row {
            name: &record.name,
            id: &record.id,
            pid: record.supervisor.pid,
            container_pid: record.container.map(|c| c.pid),
            network: record.network.as_deref(),
            address: record.address,
            address6: record.address6,
            ports: &record.ports,
            started_at: record.started_at,
            uptime_secs: record.uptime(),
            command: &record.command,
            labels: &record.labels,
            memory: limits.memory,
            nano_cpus: limits.nano_cpus,
            pids_limit: limits.pids_limit,
        }
    }

    /// A `--format` template's field.
    fn field(&self, field: Field) -> String {
        let or_empty = |v: Option<String>| v.unwrap_or_default();
        match field {
            Field::Name => self.name.to_string(),
            Field::Id => self.id.to_string(),
            Field::Pid => self.pid.to_string(),
            Field::ContainerPid => or_empty(self.container_pid.map(|p| p.to_string())),
            Field::Address => or_empty(self.address.map(|a| a.to_string())),
            Field::Address6 => or_empty(self.address6.map(|a| a.to_string())),
            Field::Ports => port_summary(self.ports),
            Field::Status => format!("Up {}", uptime(self.uptime_secs)),
            Field::Uptime => uptime(self.uptime_secs),
            Field::Command => self.command.join(" "),
            Field::Labels => self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
            Field::Memory => or_empty(self.memory.map(format_bytes)),
            Field::Cpus => or_empty(self.nano_cpus.map(format_cpus)),
            Field::PidsLimit => or_empty(self.pids_limit.map(|n| n.to_string())),
        }
    }
}

/// Prints the containers whose supervisor is alive and that match the
/// filters, in name order. Stale and corrupt records are left out, with a
/// warning that `gc` removes them.
pub fn ps(state_dir: &Path, options: &PsOptions, out: &mut dyn Write) -> Result<(), Error> {
    let filters = Filters::parse(&options.filters)?;
    let format = Format::of(options)?;
    let mut live = Vec::new();
    let mut leftovers = 0;
    for entry in Store::new(state_dir).entries()? {
        match entry {
            Entry::Record(record) if !record.is_stale() => {
                if filters.matches(&record) {
                    live.push(*record);
                }
            }
            Entry::Record(_) | Entry::Corrupt { .. } => leftovers += 1,
            Entry::Temporary { .. } => {}
        }
    }
    if leftovers > 0 {
        tracing::warn!(
            "{leftovers} record(s) of dead supervisors or unreadable: `supervisor gc` removes them"
        );
    }
    let rows: Vec<Row> = live.iter().map(Row::new).collect();
    let json = |e: serde_json::Error| Error::Output(e.into());
    let text = match format {
        _ if options.quiet => rows.iter().map(|r| format!("{}\n", r.id)).collect(),
        Format::Table => table(&rows),
        Format::Pretty => serde_json::to_string_pretty(&rows).map_err(json)? + "\n",
        Format::Lines => rows
            .iter()
            .map(|r| serde_json::to_string(r).map(|l| l + "\n"))
            .collect::<Result<String, _>>()
            .map_err(json)?,
        Format::Template(template) => template.render(&rows, Row::field, |row, key| {
            row.labels.get(key).cloned().unwrap_or_default()
        }),
    };
    out.write_all(text.as_bytes()).map_err(Error::Output)
}

/// Port groups shown in the table before "…(+N more)": `--json` has them
/// all.
const MAX_PORT_GROUPS: usize = 4;

fn table(rows: &[Row]) -> String {
    let mut lines = vec![["NAME", "ID", "PID", "ADDRESS", "PORTS", "UPTIME"].map(String::from)];
    for row in rows {
        let ports = port_summary(row.ports);
        lines.push([
            row.name.to_string(),
            row.id.to_string(),
            row.pid.to_string(),
            match (row.address, row.network) {
                (Some(address), _) => match row.address6 {
                    Some(address6) => format!("{address},{address6}"),
                    None => address.to_string(),
                },
                // A container sharing another's network: whose it is.
                (None, Some(shared)) if shared.starts_with("container:") => shared.to_string(),
                (None, _) => "-".to_string(),
            },
            if ports.is_empty() {
                "-".to_string()
            } else {
                ports
            },
            uptime(row.uptime_secs),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for line in lines {
        let mut cells = String::new();
        for (cell, width) in line.iter().zip(&widths) {
            // Padded by hand: a `{:width$}` above 65,535 panics.
            cells.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            cells.extend(std::iter::repeat_n(' ', pad + 2));
        }
        text.push_str(cells.trim_end());
        text.push('\n');
    }
    text
}

/// The ports as docker's `ps` shows them, consecutive ones as ranges
/// (`0.0.0.0:8000-8010->9000-9010/tcp`), at most `MAX_PORT_GROUPS` groups
/// and then how many more.
fn port_summary(ports: &[PublishedPort]) -> String {
    let mut groups: Vec<(PublishedPort, u16)> = Vec::new();
    for port in ports {
        match groups.last_mut() {
            Some((first, count))
                if first.host_ip == port.host_ip
                    && first.protocol == port.protocol
                    && u32::from(first.host_port) + u32::from(*count)
                        == u32::from(port.host_port)
                    && u32::from(first.container_port) + u32::from(*count)
                        == u32::from(port.container_port) =>
            {
                *count += 1;
            }
            _ => groups.push((*port, 1)),
        }
    }
    let mut shown: Vec<String> = groups
        .iter()
        .take(MAX_PORT_GROUPS)
        .map(|(first, count)| match count {
            1 => first.to_string(),
            _ => {
                let ip = Bracketed(Port::from(*first).host_ip);
                let last = count - 1;
                format!(
                    "{ip}:{}-{}->{}-{}/{}",
                    first.host_port,
                    first.host_port + last,
                    first.container_port,
                    first.container_port + last,
                    first.protocol
                )
            }
        })
        .collect();
    if groups.len() > MAX_PORT_GROUPS {
        let more: usize = groups[MAX_PORT_GROUPS..]
            .iter()
            .map(|(_, count)| usize::from(*count))
            .sum();
        shown.push(format!("…(+{more} more)"));
    }
    shown.join(", ")
}

/// `42s`, `5m07s`, `3h12m`, `2d04h`.
fn uptime(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::Process;
    use crate::values::Protocol;

    fn port(host_port: u16, container_port: u16, protocol: Protocol) -> PublishedPort {
        PublishedPort {
            host_ip: None,
            host_port,
            container_port,
            protocol,
        }
    }

    #[test]
    fn consecutive_ports_show_as_ranges_and_many_groups_are_capped() {
        let mut ports: Vec<PublishedPort> = (0..3)
            .map(|i| port(8000 + i, 9000 + i, Protocol::Tcp))
            .collect();
        ports.push(port(8003, 9003, Protocol::Udp));
        ports.push(port(8004, 9999, Protocol::Tcp));
        let mut local = port(5353, 53, Protocol::Udp);
        local.host_ip = Some(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        ports.push(local);
        assert_eq!(
            port_summary(&ports),
            "0.0.0.0:8000-8002->9000-9002/tcp, 0.0.0.0:8003->9003/udp, 0.0.0.0:8004->9999/tcp, 127.0.0.1:5353->53/udp"
        );
        // Every other port: 5,000 groups of one.
        let scattered: Vec<PublishedPort> = (0..5000)
            .map(|i| port(10000 + 2 * i, 80, Protocol::Tcp))
            .collect();
        assert_eq!(
            port_summary(&scattered),
            "0.0.0.0:10000->80/tcp, 0.0.0.0:10002->80/tcp, 0.0.0.0:10004->80/tcp, 0.0.0.0:10006->80/tcp, …(+4996 more)"
        );
        let whole: Vec<PublishedPort> = (1..=u16::MAX).map(|p| port(p, p, Protocol::Tcp)).collect();
        assert_eq!(port_summary(&whole), "0.0.0.0:1-65535->1-65535/tcp");
    }

    #[test]
    fn a_container_with_thousands_of_ports_fits_one_bounded_line() {
        let mut many = Record::new(
            "many",
            "0123456789ab",
            Process {
                pid: 42,
                start_time: 1,
            },
            vec![],
        );
        many.ports = (0..10_000)
            .map(|i| port(10_000 + 3 * i, 80 + i, Protocol::Udp))
            .collect();
        let text = table(&[Row::new(&many)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].contains("…(+9996 more)"), "{text}");
        assert!(lines[1].chars().count() < 200, "{text}");
    }

    #[test]
    fn filters_or_names_and_and_labels() {
        let mut web = Record::new(
            "web-1",
            "0123456789ab",
            Process {
                pid: 42,
                start_time: 1,
            },
            vec![],
        );
        web.labels = [("tier", "front"), ("canary", "")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let parse =
            |f: &[&str]| Filters::parse(&f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let matches = |f: &[&str]| parse(f).unwrap().matches(&web);
        assert!(matches(&[]));
        assert!(matches(&["name=eb-"]));
        assert!(matches(&["name=db", "name=web"]), "names are ORed");
        assert!(!matches(&["name=db"]));
        assert!(matches(&["label=tier", "label=canary"]));
        assert!(matches(&["label=tier=front", "label=canary="]));
        assert!(!matches(&["label=tier", "label=other"]), "labels are ANDed");
        assert!(!matches(&["label=tier=back"]));
        assert!(!matches(&["name=web", "label=tier=back"]), "keys are ANDed");
        for bad in ["status=running", "label=", "label==x", "name"] {
            assert!(
                matches!(parse(&[bad]), Err(Error::Filter(f)) if f == bad),
                "{bad}"
            );
        }
    }

    #[test]
    fn uptime_is_compact() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(59), "59s");
        assert_eq!(uptime(307), "5m07s");
        assert_eq!(uptime(3600 * 3 + 60 * 12 + 5), "3h12m");
        assert_eq!(uptime(86400 * 2 + 3600 * 4), "2d04h");
    }

    #[test]
    fn the_table_aligns_columns_and_dashes_what_is_missing() {
        let mut web = Record::new(
            "web",
            "0123456789ab",
            Process {
                pid: 42,
                start_time: 1,
            },
            vec![],
        );
        web.address = Some(Ipv4Addr::new(172, 16, 0, 2));
        web.ports = vec![PublishedPort {
            host_ip: None,
            host_port: 8080,
            container_port: 8000,
            protocol: Protocol::Tcp,
        }];
        let quiet = Record::new(
            "a-longer-name",
            "ba9876543210",
            Process {
                pid: 4242,
                start_time: 1,
            },
            vec![],
        );
        let text = table(&[Row::new(&web), Row::new(&quiet)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("NAME           ID            PID   ADDRESS     PORTS"));
        assert!(
            lines[1].starts_with(
                "web            0123456789ab  42    172.16.0.2  0.0.0.0:8080->8000/tcp  0s"
            ),
            "{text}"
        );
        assert!(
            lines[2].starts_with("a-longer-name  ba9876543210  4242  -           -"),
            "{text}"
        );
    }

    #[test]
    fn a_dual_stack_container_shows_both_addresses() {
        let mut web = Record::new(
            "web",
            "0123456789ab",
            Process {
                pid: 42,
                start_time: 1,
            },
            vec![],
        );
        web.address = Some(Ipv4Addr::new(172, 16, 0, 2));
        web.address6 = Some("fd53:7570:6572::2".parse().unwrap());
        let text = table(&[Row::new(&web)]);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains(" 172.16.0.2,fd53:7570:6572::2 "),
            "{text}"
        );
        let row = Row::new(&web);
        assert_eq!(row.field(Field::Address6), "fd53:7570:6572::2");
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""address6":"fd53:7570:6572::2""#), "{json}");
    }
}
