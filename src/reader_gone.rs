//! Stdout whose reader may go away: `supervisor ps | head -1`. A closed
//! pipe is the reader's choice, not a failure of ours: a command ends
//! quietly, with no line about the pipe. One that only reads (`ps`,
//! `inspect`, `logs`, `run --dry-run`) stops at the first write that fails,
//! and exits 0; one that does work (`stop`, `kill`, `gc`, `check`, `bench`)
//! writes through a [`Report`], finishes its work and exits as it would
//! have.

use std::io::{self, Write, stdout};

/// True when a write failed only because stdout's reader has gone.
pub fn reader_left(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::BrokenPipe
}

/// Stdout for a command whose work matters more than its report: once the
/// reader has gone, the rest of the report is dropped and the work goes
/// on, so `stop a b | head -c0` still stops b, and `check | head -1` still
/// exits 1 on drift.
#[derive(Default)]
pub struct Report {
    reader_left: bool,
}

impl Report {
    fn pass(&mut self, result: io::Result<usize>, len: usize) -> io::Result<usize> {
        match result {
            Err(err) if reader_left(&err) => {
                self.reader_left = true;
                Ok(len)
            }
            other => other,
        }
    }
}

impl Write for Report {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.reader_left {
            return Ok(buf.len());
        }
        let written = stdout().write(buf);
        self.pass(written, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.reader_left {
            return Ok(());
        }
        let flushed = stdout().flush().map(|()| 0);
        self.pass(flushed, 0).map(drop)
    }
}
