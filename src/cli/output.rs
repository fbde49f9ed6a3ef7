//! Writing to the terminal without panicking: `println!` and `eprintln!`
//! panic when their stream cannot be written (`2>/dev/full`, a closed pipe).
//! Every line the command line prints goes through here instead.
use std::fmt;
use std::io::{self, Write};

/// Plain text with control bytes (from configs and containers) made
/// visible line by line ([`crate::conf::visible`]); line breaks are kept.
pub fn shown(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|l| {
            let body = l.trim_end_matches('\n');
            format!("{}{}", crate::conf::visible(body), &l[body.len()..])
        })
        .collect()
}

/// Writes one line to stderr. An unwritable stderr is ignored: there is
/// nowhere left to say anything.
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Writes text to stderr, ignoring an unwritable stderr.
pub fn err_text(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// Writes text to stdout and flushes it. The error, a broken pipe included,
/// goes to the caller, which ends quietly on a broken pipe ([`broken_pipe`]).
pub fn out_text(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = stdout();
    out.write_fmt(args)?;
    out.flush()
}

/// Standard output, locked, for every command's output: its errors say
/// they come from writing it (`conf print > /full/disk`) and keep their
/// kind, so a broken pipe is still told apart ([`broken_pipe`]).
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

/// Locked standard output whose errors name it ([`stdout`]).
pub struct Stdout(io::StdoutLock<'static>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(writing_stdout)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(writing_stdout)
    }
}

fn writing_stdout(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("writing to stdout: {e}"))
}

/// Whether `e` is (caused by) a broken pipe: whoever read our stdout has
/// gone (`nginx-rollout conf print x | head`), so there is nothing to report.
pub fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::output::err_line(format_args!($($arg)*)) };
}

/// `eprint!` that never panics.
macro_rules! errtext {
    ($($arg:tt)*) => { $crate::cli::output::err_text(format_args!($($arg)*)) };
}

/// `print!` that returns the error instead of panicking.
macro_rules! outtext {
    ($($arg:tt)*) => { $crate::cli::output::out_text(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_keeps_its_lines_and_escapes_the_rest() {
        assert_eq!(shown("a\x1b[2J\r\nb\x07\n"), "a\\u{1b}[2J\\u{d}\nb\\u{7}\n");
    }

    #[test]
    fn a_stdout_error_names_stdout_and_keeps_its_kind() {
        let e = writing_stdout(io::Error::from_raw_os_error(28));
        assert!(e.to_string().starts_with("writing to stdout: "), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(broken_pipe(&anyhow::Error::from(writing_stdout(
            io::ErrorKind::BrokenPipe.into()
        ))));
    }

    #[test]
    fn a_broken_pipe_is_told_apart() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(broken_pipe(&e));
        assert!(!broken_pipe(&anyhow::anyhow!("other")));
    }
}
