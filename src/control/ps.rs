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

fn table(rows: &[Row]) -> String {
    let mut lines = vec![["NAME", "ID", "PID", "ADDRESS", "PORTS", "UPTIME"].map(String::from)];
    for row in rows {
        let ports: Vec<String> = row.ports.iter().map(ToString::to_string).collect();
        lines.push([
            row.name.to_string(),
            row.id.to_string(),
            row.pid.to_string(),
            row.address
                .map_or_else(|| "-".to_string(), |a| a.to_string()),
            if ports.is_empty() {
                "-".to_string()
            } else {
                ports.join(",")
            },
            uptime(row.uptime_secs),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
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
    use crate::publish::Protocol;
    use crate::state::Process;

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
