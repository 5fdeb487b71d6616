//! How an error quotes a value the user gave: whole when short, else its
//! first characters and its length. A 10,000-byte `--name` repeated whole
//! made a 10 KB error line; its beginning and size say as much.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;

/// The characters of a long value an error shows.
pub const SHOWN: usize = 64;

/// The longest value quoted whole: a path (a --volume of two) or one just
/// over a limit (a 65-character hostname) reads better whole; cut, it
/// loses what the message is about.
pub const WHOLE: usize = 256;

/// A value as an error quotes it: `"abc"`, or for one longer than `WHOLE`
/// characters its first `SHOWN` quoted, then `… (N bytes)`. Quoted as `{:?}` quotes
/// (escapes, and bytes that are not UTF-8 as `\xFF`).
pub struct Quoted<'a>(&'a OsStr);

/// `value` as an error quotes it (see [`Quoted`]).
pub fn quoted<T: AsRef<OsStr> + ?Sized>(value: &T) -> Quoted<'_> {
    Quoted(value.as_ref())
}

/// Where a value longer than `WHOLE` characters is cut, after `SHOWN`
/// (bytes, for one that is not UTF-8), if it is.
fn cut(value: &OsStr) -> Option<usize> {
    match value.to_str() {
        Some(text) => {
            text.char_indices().nth(WHOLE)?;
            text.char_indices().nth(SHOWN).map(|(at, _)| at)
        }
        None => (value.len() > WHOLE).then_some(SHOWN),
    }
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match cut(self.0) {
            None => write!(f, "{:?}", self.0),
            Some(at) => write!(
                f,
                "{:?}… ({} bytes)",
                OsStr::from_bytes(&self.0.as_bytes()[..at]),
                self.0.len()
            ),
        }
    }
}

/// `text` shortened as [`Quoted`] shortens it, for a message that puts
/// its own quotes around it (clap's `'VALUE'`).
pub fn shortened(text: &str) -> Cow<'_, str> {
    match cut(OsStr::new(text)) {
        None => Cow::Borrowed(text),
        Some(at) => Cow::Owned(format!("{}… ({} bytes)", &text[..at], text.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_value_is_quoted_whole_and_a_long_one_shortened_with_its_length() {
        assert_eq!(quoted("a\"b").to_string(), r#""a\"b""#);
        assert_eq!(quoted(&"x".repeat(WHOLE)).to_string().len(), WHOLE + 2);
        let long = "é".repeat(10_000);
        assert_eq!(
            quoted(&long).to_string(),
            format!("\"{}\"… (20000 bytes)", "é".repeat(SHOWN))
        );
        let bytes = OsStr::from_bytes(&[0xff; WHOLE + 1]);
        assert_eq!(
            quoted(bytes).to_string(),
            format!("\"{}\"… ({} bytes)", "\\xFF".repeat(SHOWN), WHOLE + 1)
        );
        assert_eq!(shortened("short"), "short");
        assert_eq!(
            shortened(&"9".repeat(WHOLE + 1)),
            format!("{}… ({} bytes)", "9".repeat(SHOWN), WHOLE + 1)
        );
    }
}
