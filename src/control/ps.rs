//! `supervisor ps`: the running containers (with `-a` also the exited ones,
//! and the dead: records of crashed supervisors, which `gc` removes), as a
//! table, as JSON or through a template, optionally filtered by name or
//! label.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::Serialize;

use super::Error;
use super::template::{Field, Template};
use crate::state::{Entry, Exited, PublishedPort, Record, Store};
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
    /// `-a`: the exited and the dead too.
    pub all: bool,
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

    fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        let name = self.names.is_empty() || self.names.iter().any(|n| name.contains(n));
        let labels = self.labels.iter().all(|(key, value)| {
            labels
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

/// Where a container is in its life, as `ps --json` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    /// Its supervisor is still setting it up: its command has not been
    /// released yet (`exec` waits for it; see control::exec).
    Starting,
    Running,
    Exited,
    /// Its supervisor crashed: its record is what `gc` removes.
    Dead,
}

/// One container in `ps --json`: a stable shape for scripts, apart from the
/// record's.
#[derive(Debug, Serialize)]
struct Row<'a> {
    name: &'a str,
    id: &'a str,
    /// The supervisor's pid; null once exited.
    pid: Option<u32>,
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
    /// Null unless running.
    uptime_secs: Option<u64>,
    command: &'a [String],
    labels: &'a BTreeMap<String, String>,
    /// `--memory` in bytes, `--cpus` in billionths, `--pids-limit`; null
    /// when unlimited.
    memory: Option<u64>,
    nano_cpus: Option<u64>,
    pids_limit: Option<u64>,
    status: Status,
    /// Null unless exited.
    exit_code: Option<u8>,
    /// Seconds since the Unix epoch; null unless exited.
    finished_at: Option<u64>,
    /// Seconds since it exited (for the table, not the JSON).
    #[serde(skip)]
    exited_secs: u64,
}

impl<'a> Row<'a> {
    /// A record's container: starting, running, or dead when its
    /// supervisor is.
    fn new(record: &'a Record) -> Row<'a> {
        let status = match (record.is_stale(), record.is_starting()) {
            (true, _) => Status::Dead,
            (false, true) => Status::Starting,
            (false, false) => Status::Running,
        };
        Row::with_status(record, status)
    }

    fn with_status(record: &'a Record, status: Status) -> Row<'a> {
        let limits = record
            .resources
            .as_ref()
            .map(|l| l.limits)
            .unwrap_or_default();
        Row {
            name: &record.name,
            id: &record.id,
            pid: Some(record.supervisor.pid),
            container_pid: record.container.map(|c| c.pid),
            network: record.network.as_deref(),
            address: record.address,
            address6: record.address6,
            ports: &record.ports,
            started_at: record.started_at,
            uptime_secs: (status == Status::Running).then(|| record.uptime()),
            command: &record.command,
            labels: &record.labels,
            memory: limits.memory,
            nano_cpus: limits.nano_cpus,
            pids_limit: limits.pids_limit,
            status,
            exit_code: None,
            finished_at: None,
            exited_secs: 0,
        }
    }

    fn exited(exited: &'a Exited) -> Row<'a> {
        Row {
            name: &exited.name,
            id: &exited.id,
            pid: None,
            container_pid: None,
            network: None,
            address: None,
            address6: None,
            ports: &[],
            started_at: exited.started_at,
            uptime_secs: None,
            command: &exited.command,
            labels: &exited.labels,
            memory: None,
            nano_cpus: None,
            pids_limit: None,
            status: Status::Exited,
            exit_code: Some(exited.exit_code),
            finished_at: Some(exited.finished_at),
            exited_secs: exited.since(),
        }
    }

    /// docker's STATUS: `Up 5m07s`, `Exited (3) 8 seconds ago`, `Dead`;
    /// `Starting` for the milliseconds before its command runs.
    fn status_text(&self) -> String {
        match (self.status, self.exit_code) {
            (Status::Starting, _) => "Starting".to_string(),
            (Status::Running, _) => format!("Up {}", uptime(self.uptime_secs.unwrap_or(0))),
            (Status::Exited, code) => format!(
                "Exited ({}) {}",
                code.unwrap_or_default(),
                ago(self.exited_secs)
            ),
            (Status::Dead, _) => "Dead".to_string(),
        }
    }

    /// A `--format` template's field.
    fn field(&self, field: Field) -> String {
        let or_empty = |v: Option<String>| v.unwrap_or_default();
        match field {
            Field::Name => self.name.to_string(),
            Field::Id => self.id.to_string(),
            Field::Pid => or_empty(self.pid.map(|p| p.to_string())),
            Field::ContainerPid => or_empty(self.container_pid.map(|p| p.to_string())),
            Field::Address => or_empty(self.address.map(|a| a.to_string())),
            Field::Address6 => or_empty(self.address6.map(|a| a.to_string())),
            Field::Network => self.network.unwrap_or_default().to_string(),
            Field::Ports => port_summary(self.ports),
            Field::Status => self.status_text(),
            Field::ExitCode => or_empty(self.exit_code.map(|c| c.to_string())),
            Field::Uptime => or_empty(self.uptime_secs.map(uptime)),
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
/// filters, in name order; with `all` the exited and the dead too. Stale
/// and corrupt records left out are counted in a warning that `gc`
/// removes them.
pub fn ps(state_dir: &Path, options: &PsOptions, out: &mut dyn Write) -> Result<(), Error> {
    let filters = Filters::parse(&options.filters)?;
    let format = Format::of(options)?;
    let store = Store::new(state_dir);
    let mut records = Vec::new();
    let mut leftovers = 0;
    for entry in store.entries()? {
        match entry {
            Entry::Record(record) if options.all || !record.is_stale() => {
                if filters.matches(&record.name, &record.labels) {
                    records.push(*record);
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
    let exited = match options.all {
        // A name's new run replaces its exited record: one being replaced
        // right now is not shown twice.
        true => store
            .exited()
            .all()?
            .into_iter()
            .filter(|e| filters.matches(&e.name, &e.labels))
            .filter(|e| !records.iter().any(|r| r.name == e.name))
            .collect(),
        false => Vec::new(),
    };
    let mut rows: Vec<Row> = records.iter().map(Row::new).collect();
    rows.extend(exited.iter().map(Row::exited));
    rows.sort_by(|a, b| a.name.cmp(b.name));
    let json = |e: serde_json::Error| Error::Output(e.into());
    let text = match format {
        _ if options.quiet => rows.iter().map(|r| format!("{}\n", r.id)).collect(),
        Format::Table => table(&rows, options.all),
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

/// The last column is UPTIME; with `-a`, docker's STATUS.
fn table(rows: &[Row], all: bool) -> String {
    let last = if all { "STATUS" } else { "UPTIME" };
    let mut lines = vec![["NAME", "ID", "PID", "ADDRESS", "PORTS", last].map(String::from)];
    for row in rows {
        let ports = port_summary(row.ports);
        lines.push([
            row.name.to_string(),
            row.id.to_string(),
            row.pid.map_or("-".to_string(), |p| p.to_string()),
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
            match all {
                true => row.status_text(),
                false => uptime(row.uptime_secs.unwrap_or(0)),
            },
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

/// docker's way of saying how long ago: `8 seconds ago`, `3 minutes ago`.
fn ago(secs: u64) -> String {
    let (n, unit) = match secs {
        0..60 => (secs, "second"),
        60..3600 => (secs / 60, "minute"),
        3600..86400 => (secs / 3600, "hour"),
        _ => (secs / 86400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural} ago")
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
        let text = table(&[Row::new(&many)], false);
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
        let matches = |f: &[&str]| parse(f).unwrap().matches(&web.name, &web.labels);
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
    fn an_exited_row_says_its_code_and_when_and_nulls_what_it_no_longer_has() {
        let exited = Exited {
            name: "job".into(),
            id: "0123456789ab".into(),
            command: vec!["sh".into()],
            labels: BTreeMap::new(),
            started_at: 10,
            finished_at: 20,
            exit_code: 3,
        };
        let row = Row::exited(&exited);
        assert!(
            row.status_text().starts_with("Exited (3) "),
            "{}",
            row.status_text()
        );
        assert!(row.status_text().ends_with(" ago"), "{}", row.status_text());
        assert_eq!(row.field(Field::ExitCode), "3");
        assert_eq!(row.field(Field::Pid), "");
        let json: serde_json::Value = serde_json::to_value(&row).unwrap();
        assert_eq!(json["status"], "exited");
        assert_eq!(json["exit_code"], 3);
        assert_eq!(json["finished_at"], 20);
        assert_eq!(json["pid"], serde_json::Value::Null);
        assert!(json.get("exited_secs").is_none(), "{json}");
        let text = table(&[row], true);
        assert!(text.lines().next().unwrap().ends_with("STATUS"), "{text}");
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .starts_with("job   0123456789ab  -    -"),
            "{text}"
        );
    }

    #[test]
    fn a_running_row_has_null_exit_fields_and_a_dead_one_says_dead() {
        let mine = Record::new("up", "aaa", Process::current().unwrap(), vec![]);
        let row = Row::new(&mine);
        assert_eq!(row.status_text(), "Up 0s");
        assert_eq!(row.field(Field::ExitCode), "");
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["status"], "running");
        assert_eq!(json["exit_code"], serde_json::Value::Null);
        assert_eq!(json["finished_at"], serde_json::Value::Null);
        let mut gone = mine.clone();
        gone.supervisor.start_time += 1;
        assert_eq!(Row::new(&gone).status_text(), "Dead");
        assert_eq!(
            serde_json::to_value(Row::new(&gone)).unwrap()["status"],
            "dead"
        );
    }

    #[test]
    fn a_row_whose_command_is_not_released_yet_says_starting() {
        // Recorded by `run` before its container is cloned: no process yet.
        let mut starting = Record::new("up", "aaa", Process::current().unwrap(), vec![]);
        starting.starting = true;
        assert!(starting.container.is_none());
        assert_eq!(Row::new(&starting).status_text(), "Starting");
        // A CNI attachment's record, held by no process, has none either.
        let attachment = Record::new("c1-eth0", "bbb", Process::UNTIL_RELEASED, vec![]);
        assert_eq!(Row::new(&attachment).status_text(), "Up 0s");
        // Cloned and recorded, not released yet.
        starting.container = Some(Process::current().unwrap());
        let row = Row::new(&starting);
        assert_eq!(row.status_text(), "Starting");
        assert_eq!(row.field(Field::Uptime), "");
        assert_eq!(serde_json::to_value(&row).unwrap()["status"], "starting");
        starting.supervisor.start_time += 1;
        assert_eq!(Row::new(&starting).status_text(), "Dead");
    }

    #[test]
    fn ago_reads_as_docker_says_it() {
        assert_eq!(ago(0), "0 seconds ago");
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(59), "59 seconds ago");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(7200), "2 hours ago");
        assert_eq!(ago(86400 * 3), "3 days ago");
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
        let text = table(&[Row::new(&web), Row::new(&quiet)], false);
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
        let text = table(&[Row::new(&web)], false);
        assert!(
            text.lines()
                .nth(1)
                .unwrap()
                .contains(" 172.16.0.2,fd53:7570:6572::2 "),
            "{text}"
        );
        let row = Row::new(&web);
        assert_eq!(row.field(Field::Address6), "fd53:7570:6572::2");
        assert_eq!(row.field(Field::Network), "", "an earlier version's record");
        let json = serde_json::to_string(&row).unwrap();
        assert!(json.contains(r#""address6":"fd53:7570:6572::2""#), "{json}");
        web.network = Some("container:db".into());
        assert_eq!(Row::new(&web).field(Field::Network), "container:db");
    }
}
