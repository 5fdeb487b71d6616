//! Files and includes: reading a ruleset file (regular files only, within
//! the size limits) and `include "PATH"`, with nft's glob(3) wildcards.

use super::*;

impl<'b> Parser<'b> {
    /// `include "file"`: parses the file with `body` (the items of the block
    /// the include stands in) and returns them. Only regular files are
    /// read: a FIFO or a device is an error naming it, and a directory is
    /// read through a wildcard in the file name, as nft reads it
    /// (`include "rules.d/*.nft"`: every match but dot files, in name
    /// order, directories among them include nothing, no match is fine).
    pub(super) fn include<T>(
        &mut self,
        mut body: impl FnMut(&mut Parser<'b>, End) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let span = self.expect_word("include")?;
        let file = self.string("a quoted file name")?;
        self.separator()?;
        if self.include_depth >= MAX_INCLUDE_DEPTH {
            return Err(Error::new(
                span,
                format!("includes nest more than {MAX_INCLUDE_DEPTH} levels deep"),
            ));
        }
        let cannot_read = |shown: &dyn std::fmt::Display, err: std::io::Error| {
            Error::new(
                file.span.clone(),
                format!("cannot read include \"{shown}\": {}", io_reason(&err)),
            )
        };
        let path = self.dir.join(&file.text);
        let (dir, pattern) = match (path.parent(), path.file_name()) {
            // A bare pattern in a file named without a directory has ""
            // for its parent, which read_dir refuses: it means here.
            (Some(dir), Some(name)) if has_wildcards(&file.text) && dir.as_os_str().is_empty() => {
                (Path::new("."), name)
            }
            (Some(dir), Some(name)) if has_wildcards(&file.text) => (dir, name),
            _ => {
                if let FileKind::Directory =
                    file_kind(&path).map_err(|e| cannot_read(&file.text, e))?
                {
                    return Err(Error::new(
                        file.span.clone(),
                        format!(
                            "cannot read include \"{}\": a directory (nft includes nothing for it; to read its files write \"{}/*\")",
                            file.text,
                            file.text.trim_end_matches('/')
                        ),
                    ));
                }
                return self.include_file(&path, &file.text, &file.span, &mut body);
            }
        };
        if has_wildcards(&dir.to_string_lossy()) {
            return Err(Error::new(
                file.span.clone(),
                "include with wildcards in a directory name is not supported (only in the file name)",
            ));
        }
        let mut items = Vec::new();
        let matches = glob_entries(dir, pattern.as_encoded_bytes())
            .map_err(|e| cannot_read(&dir.display(), e))?;
        for entry in matches {
            let shown = entry.display().to_string();
            match file_kind(&entry).map_err(|e| cannot_read(&shown, e))? {
                FileKind::Directory => {}
                _ => items.extend(self.include_file(&entry, &shown, &file.span, &mut body)?),
            }
        }
        Ok(items)
    }

    /// Parses the regular file `path` of an include (`shown` in messages).
    fn include_file<T>(
        &mut self,
        path: &Path,
        shown: &str,
        at: &Span,
        body: &mut impl FnMut(&mut Parser<'b>, End) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let text = read_file(path).map_err(|err| {
            Error::new(
                at.clone(),
                format!("cannot read include \"{shown}\": {}", io_reason(&err)),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let name = path.display().to_string();
        let mut sub = Parser::new(
            &name,
            &text,
            &dir,
            self.include_depth + 1,
            self.budget,
            self.errors,
        )?;
        body(&mut sub, End::File)
    }
}

/// What a path names, for reading it as a ruleset file.
enum FileKind {
    Regular,
    Directory,
    /// Anything else, named for the message: "a FIFO", "a character device".
    Other(&'static str),
}

fn file_kind(path: &Path) -> std::io::Result<FileKind> {
    // Follows symbolic links, as opening the file would.
    let ty = std::fs::metadata(path)?.file_type();
    Ok(if ty.is_file() {
        FileKind::Regular
    } else if ty.is_dir() {
        FileKind::Directory
    } else {
        FileKind::Other(describe_kind(&ty))
    })
}

fn describe_kind(ty: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ty.is_fifo() {
        "a FIFO"
    } else if ty.is_char_device() {
        "a character device"
    } else if ty.is_block_device() {
        "a block device"
    } else if ty.is_socket() {
        "a socket"
    } else if ty.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// An I/O error for messages: a read that would block says why it matters.
pub fn io_reason(err: &std::io::Error) -> String {
    if err.kind() == std::io::ErrorKind::WouldBlock {
        "reading it would wait for more input (it is not a file that ends)".to_string()
    } else {
        err.to_string()
    }
}

fn not_regular(kind: &str) -> std::io::Error {
    std::io::Error::other(format!("{kind}, not a regular file"))
}

/// Reads a ruleset file, refusing what is not a regular file (a FIFO or
/// /proc/kmsg would never end, and opening a FIFO alone blocks until a
/// writer comes) and what is too large.
pub fn read_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    match file_kind(path)? {
        FileKind::Regular => {}
        FileKind::Directory => return Err(not_regular("a directory")),
        FileKind::Other(kind) => return Err(not_regular(kind)),
    }
    // Non-blocking, so that a FIFO swapped in since the check cannot make
    // the open wait; checked again on the open file.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let ty = file.metadata()?.file_type();
    if !ty.is_file() {
        return Err(not_regular(describe_kind(&ty)));
    }
    let mut text = String::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// The entries of `dir` whose names match the shell pattern `pattern`, as
/// nft's include finds them (glob(3)): names starting with `.` never match,
/// and the matches come in byte order of their names.
fn glob_entries(dir: &Path, pattern: &[u8]) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.as_encoded_bytes();
            !name.starts_with(b".") && glob_match(pattern, name)
        })
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    Ok(entries)
}

/// Whether `name` matches a shell pattern: `*` any run, `?` one byte,
/// `[abc]`, `[a-z]`, `[!a]` one byte of a class.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative, with one backtrack point for the last `*`: linear enough
    // for any pattern (no exponential backtracking).
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => class_match(pattern, p, name[n]),
            Some(&c) if c == name[n] => Some(p + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                n += 1;
            }
            (None, Some((star_p, star_n))) => {
                p = star_p + 1;
                n = star_n + 1;
                star = Some((star_p, star_n + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `byte` against the class starting at `pattern[open]` (`[`);
/// the index after the class when it matches. An unclosed `[` is a plain
/// character, as in glob(3).
fn class_match(pattern: &[u8], open: usize, byte: u8) -> Option<usize> {
    let mut i = open + 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let start = i;
    let mut matched = false;
    while let Some(&c) = pattern.get(i) {
        if c == b']' && i > start {
            return (matched != negated).then_some(i + 1);
        }
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (c..=pattern[i + 2]).contains(&byte);
            i += 3;
        } else {
            matched |= c == byte;
            i += 1;
        }
    }
    (byte == b'[').then_some(open + 1)
}

fn has_wildcards(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

#[cfg(test)]
mod tests {
    use super::glob_match;
    use crate::ruleset::test_support::parse_error;

    #[test]
    fn a_missing_include_is_an_error_at_its_path() {
        assert_eq!(
            parse_error("include \"missing.nft\"\n"),
            "t.nft:1:9: cannot read include \"missing.nft\": No such file or directory (os error 2)"
        );
    }

    #[test]
    fn shell_patterns_match_as_glob_matches_file_names() {
        let yes = |p: &str, n: &str| assert!(glob_match(p.as_bytes(), n.as_bytes()), "{p} {n}");
        let no = |p: &str, n: &str| assert!(!glob_match(p.as_bytes(), n.as_bytes()), "{p} {n}");
        yes("*", "a.nft");
        yes("*.nft", "a.nft");
        no("*.nft", "a.nft.bak");
        yes("a*b*c", "axxbyyc");
        no("a*b*c", "axxbyy");
        yes("?-x", "1-x");
        no("?-x", "12-x");
        yes("[0-9]*", "10-a");
        no("[!0-9]*", "10-a");
        yes("[ab]", "b");
        no("[ab]", "c");
        yes("[", "[");
        yes("**", "");
        no("x", "");
        // Many stars on a long name stay fast (no exponential backtracking).
        no(&"*a".repeat(50), &"a".repeat(40));
    }
}
