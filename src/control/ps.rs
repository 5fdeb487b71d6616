//! `supervisor ps`: the running containers, as a table or as JSON.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;

use super::Error;
use crate::state::{Entry, PublishedPort, Record, Store};

/// One container in `ps --json`: a stable shape for scripts, apart from the
/// record's.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    id: &'a str,
    /// The supervisor's pid.
    pid: u32,
    container_pid: Option<u32>,
    address: Option<Ipv4Addr>,
    ports: &'a [PublishedPort],
    /// Seconds since the Unix epoch.
    started_at: u64,
    uptime_secs: u64,
    command: &'a [String],
}

impl<'a> Row<'a> {
    fn new(record: &'a Record) -> Row<'a> {
        Row {
            name: &record.name,
            id: &record.id,
            pid: record.supervisor.pid,
            container_pid: record.container.map(|c| c.pid),
            address: record.address,
            ports: &record.ports,
            started_at: record.started_at,
            uptime_secs: record.uptime(),
            command: &record.command,
        }
    }
}

/// Prints the containers whose supervisor is alive, in name order. Stale
/// and corrupt records are left out, with a warning that `gc` removes them.
pub fn ps(state_dir: &Path, json: bool, out: &mut dyn Write) -> Result<(), Error> {
    let mut live = Vec::new();
    let mut leftovers = 0;
    for entry in Store::new(state_dir).entries()? {
        match entry {
            Entry::Record(record) if !record.is_stale() => live.push(record),
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
    let text = if json {
        let mut text = serde_json::to_string_pretty(&rows).map_err(|e| Error::Output(e.into()))?;
        text.push('\n');
        text
    } else {
        table(&rows)
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
            row.address
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
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
                let ip = first.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
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
        local.host_ip = Some(Ipv4Addr::LOCALHOST);
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
}
