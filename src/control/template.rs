//! `ps --format`'s templates, a small subset of docker's Go templates:
//! literal text with `{{.Field}}` and `{{.Label "KEY"}}` placeholders, `\t`
//! and `\n` as escapes, and a `table ` prefix for aligned columns under a
//! header. Anything else between braces is refused naming it, rather than
//! printed as if it were text.

use crate::values::quoted;

/// A field `ps` has for each container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Id,
    Pid,
    ContainerPid,
    Address,
    Address6,
    Network,
    Ports,
    Status,
    ExitCode,
    Uptime,
    Command,
    Labels,
    Memory,
    Cpus,
    PidsLimit,
}

/// The fields by their template names; `Names`, `ID` and `Networks` are
/// docker's.
const FIELDS: &[(&str, Field)] = &[
    ("Name", Field::Name),
    ("Names", Field::Name),
    ("ID", Field::Id),
    ("Pid", Field::Pid),
    ("ContainerPid", Field::ContainerPid),
    ("Address", Field::Address),
    ("Address6", Field::Address6),
    ("Network", Field::Network),
    ("Networks", Field::Network),
    ("Ports", Field::Ports),
    ("Status", Field::Status),
    ("ExitCode", Field::ExitCode),
    ("Uptime", Field::Uptime),
    ("Command", Field::Command),
    ("Labels", Field::Labels),
    ("Memory", Field::Memory),
    ("Cpus", Field::Cpus),
    ("PidsLimit", Field::PidsLimit),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field, &'static str),
    Label(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// `table …`: a header, and columns split at tabs and aligned.
    table: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error(
        "unknown field {} in --format: ps has {fields}, and .Label \"KEY\"",
        quoted(.0),
        fields = FIELDS.iter().map(|(n, _)| format!(".{n}")).collect::<Vec<_>>().join(", ")
    )]
    UnknownField(String),
    #[error("unclosed {{{{ in --format at byte {0}")]
    Unclosed(usize),
}

impl Template {
    pub fn parse(format: &str) -> Result<Template, TemplateError> {
        let (table, body) = match format.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => (true, rest.trim_start()),
            _ => (false, format),
        };
        let mut pieces = Vec::new();
        let mut rest = body;
        let mut offset = format.len() - body.len();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(unescape(&rest[..open])));
            }
            let close = rest[open..]
                .find("}}")
                .ok_or(TemplateError::Unclosed(offset + open))?;
            pieces.push(placeholder(rest[open + 2..open + close].trim())?);
            let end = open + close + 2;
            offset += end;
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(unescape(rest)));
        }
        Ok(Template { pieces, table })
    }

    /// The lines for `rows`, each row's values given by `value`: with
    /// `table`, a header first and the tab-separated columns aligned.
    pub fn render<R>(
        &self,
        rows: &[R],
        value: impl Fn(&R, Field) -> String,
        label: impl Fn(&R, &str) -> String,
    ) -> String {
        let line = |row: &R| -> String {
            self.pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(text) => text.clone(),
                    Piece::Field(field, _) => value(row, *field),
                    Piece::Label(key) => label(row, key),
                })
                .collect()
        };
        let mut lines: Vec<String> = Vec::new();
        if self.table {
            lines.push(self.header());
        }
        lines.extend(rows.iter().map(line));
        if self.table {
            align(&lines)
        } else {
            lines.iter().map(|l| format!("{l}\n")).collect()
        }
    }

    fn header(&self) -> String {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Field(_, name) => name.to_uppercase(),
                Piece::Label(key) => key.to_uppercase(),
            })
            .collect()
    }
}

fn placeholder(inside: &str) -> Result<Piece, TemplateError> {
    let unknown = || TemplateError::UnknownField(format!("{{{{{inside}}}}}"));
    if let Some(key) = inside.strip_prefix(".Label ") {
        let key = key.trim();
        return match key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) {
            Some(key) if !key.is_empty() => Ok(Piece::Label(key.to_string())),
            _ => Err(unknown()),
        };
    }
    let name = inside.strip_prefix('.').ok_or_else(unknown)?;
    FIELDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, field)| Piece::Field(*field, n))
        .ok_or_else(unknown)
}

fn unescape(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// Columns split at tabs, each padded to its widest cell plus three
/// spaces, as docker's tabwriter does.
fn align(lines: &[String]) -> String {
    let cells: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let columns = cells.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            cells
                .iter()
                .filter_map(|row| row.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for row in cells {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row {
        name: &'static str,
        ports: &'static str,
    }

    fn render(format: &str, rows: &[Row]) -> String {
        Template::parse(format).expect("valid").render(
            rows,
            |row, field| match field {
                Field::Name => row.name.to_string(),
                Field::Ports => row.ports.to_string(),
                other => format!("<{other:?}>"),
            },
            |row, key| format!("{}:{key}", row.name),
        )
    }

    const ROWS: &[Row] = &[
        Row {
            name: "web",
            ports: "0.0.0.0:8080->80/tcp",
        },
        Row {
            name: "a-longer-name",
            ports: "",
        },
    ];

    #[test]
    fn placeholders_are_replaced_and_text_kept() {
        assert_eq!(
            render("{{.Name}} {{ .Ports }}!", ROWS),
            "web 0.0.0.0:8080->80/tcp!\na-longer-name !\n"
        );
        assert_eq!(render("{{.Names}}\\t{{.ID}}", &ROWS[..1]), "web\t<Id>\n");
        assert_eq!(render("{{.Label \"tier\"}}", &ROWS[..1]), "web:tier\n");
    }

    #[test]
    fn a_table_has_a_header_and_aligned_columns() {
        assert_eq!(
            render("table {{.Name}}\\t{{.Ports}}", ROWS),
            "NAME            PORTS\nweb             0.0.0.0:8080->80/tcp\na-longer-name\n"
        );
    }

    #[test]
    fn an_unknown_field_or_unclosed_brace_is_refused_naming_it() {
        let err = Template::parse("{{.Name}} {{.Image}}").unwrap_err();
        assert_eq!(err, TemplateError::UnknownField("{{.Image}}".into()));
        assert!(
            err.to_string()
                .starts_with("unknown field \"{{.Image}}\" in --format: ps has .Name, .Names, .ID"),
            "{err}"
        );
        assert_eq!(
            Template::parse("{{json .}}").unwrap_err(),
            TemplateError::UnknownField("{{json .}}".into())
        );
        assert_eq!(
            Template::parse("{{.Label tier}}").unwrap_err(),
            TemplateError::UnknownField("{{.Label tier}}".into())
        );
        assert_eq!(
            Template::parse("x {{.Name").unwrap_err(),
            TemplateError::Unclosed(2)
        );
    }
}
