//! Log lines of the shard threads, written in batches.
//!
//! A shard logs one `info` line per finished call (docs/OPERATIONS.md, "Logs"). Written one by
//! one that is a `write(2)` per call on the call path. A shard thread that calls [`enable`]
//! instead collects its `info`/`debug`/`trace` lines in a buffer that its loop writes out
//! with one system call when it is [`MAX_DELAY`] old or [`MAX_BYTES`] long; `warn` and
//! `error` lines (urgent) first write what is buffered, then themselves, at once, so nothing
//! overtakes them and nothing urgent waits. Every other thread writes each line directly.
//!
//! The cost: a shard's info lines reach the log up to [`MAX_DELAY`] late, and a crash loses
//! at most that much of them (the CDRs, not the log, are the record of a call).

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// The oldest buffered line is written after at most this long.
pub const MAX_DELAY: Duration = Duration::from_millis(100);
/// A buffer this long is written at once.
pub const MAX_BYTES: usize = 64 * 1024;

struct Pending {
    buf: Vec<u8>,
    /// When the oldest buffered line arrived; `None` when empty.
    since: Option<Instant>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // The thread is ending: its lines still go out.
        if !self.buf.is_empty() {
            let _ = io::stderr().write_all(&self.buf);
        }
    }
}

thread_local! {
    static PENDING: RefCell<Option<Pending>> = const { RefCell::new(None) };
}

/// Buffer this thread's non-urgent lines from now on (a shard thread, at its start).
pub fn enable() {
    PENDING.with(|p| {
        p.borrow_mut().get_or_insert_with(|| Pending {
            buf: Vec::with_capacity(MAX_BYTES),
            since: None,
        });
    });
}

/// Write one formatted line (or part of one) to `out`, or buffer it on an [`enable`]d thread.
/// `urgent` lines (warn, error) are never buffered and first push out what is.
pub fn write(line: &[u8], urgent: bool, out: &mut dyn Write) -> io::Result<()> {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let Some(p) = p.as_mut() else {
            return out.write_all(line);
        };
        if urgent {
            write_out(p, out)?;
            return out.write_all(line);
        }
        if p.since.is_none() {
            p.since = Some(Instant::now());
        }
        p.buf.extend_from_slice(line);
        if p.buf.len() >= MAX_BYTES {
            write_out(p, out)?;
        }
        Ok(())
    })
}

/// When this thread's buffer must be written ([`flush`]); `None` when there is nothing.
pub fn due() -> Option<Instant> {
    PENDING.with(|p| {
        p.borrow()
            .as_ref()
            .and_then(|p| p.since)
            .map(|s| s + MAX_DELAY)
    })
}

/// Write this thread's buffered lines to `out` now.
pub fn flush(out: &mut dyn Write) -> io::Result<()> {
    PENDING.with(|p| match p.borrow_mut().as_mut() {
        Some(p) => write_out(p, out),
        None => Ok(()),
    })
}

/// [`flush`] to stderr if [`due`] has passed at `now` (the shard loop, every turn).
pub fn flush_if_due(now: Instant) {
    if due().is_some_and(|d| d <= now) {
        let _ = flush(&mut io::stderr());
    }
}

fn write_out(p: &mut Pending, out: &mut dyn Write) -> io::Result<()> {
    p.since = None;
    if p.buf.is_empty() {
        return Ok(());
    }
    let r = out.write_all(&p.buf);
    // Written or not (a broken stderr), the lines are gone: never grow without bound.
    p.buf.clear();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_fresh_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().expect("test thread");
    }

    #[test]
    fn threads_not_enabled_write_each_line_at_once() {
        on_fresh_thread(|| {
            let mut out = Vec::new();
            write(b"one\n", false, &mut out).expect("write");
            assert_eq!(out, b"one\n");
            assert_eq!(due(), None);
        });
    }

    #[test]
    fn enabled_thread_buffers_until_flushed_and_keeps_order() {
        on_fresh_thread(|| {
            enable();
            let mut out = Vec::new();
            let before = Instant::now();
            write(b"a\n", false, &mut out).expect("write");
            write(b"b\n", false, &mut out).expect("write");
            assert!(out.is_empty(), "info lines wait for the flush");
            let d = due().expect("a flush is due");
            assert!(d >= before + MAX_DELAY && d <= Instant::now() + MAX_DELAY);
            // An urgent line pushes the buffer out first, then itself.
            write(b"WARN c\n", true, &mut out).expect("write");
            assert_eq!(out, b"a\nb\nWARN c\n");
            assert_eq!(due(), None);
            write(b"d\n", false, &mut out).expect("write");
            flush(&mut out).expect("flush");
            assert_eq!(out, b"a\nb\nWARN c\nd\n");
            assert_eq!(due(), None, "nothing left after a flush");
        });
    }

    #[test]
    fn a_full_buffer_is_written_at_once() {
        on_fresh_thread(|| {
            enable();
            let mut out = Vec::new();
            let line = [b'x'; 1000];
            let mut n = 0;
            while out.is_empty() {
                write(&line, false, &mut out).expect("write");
                n += 1;
                assert!(n <= MAX_BYTES / line.len() + 1, "never written");
            }
            assert_eq!(out.len(), n * line.len());
            assert!(out.len() >= MAX_BYTES);
            assert_eq!(due(), None);
        });
    }

    #[test]
    fn flush_if_due_waits_for_the_delay() {
        on_fresh_thread(|| {
            enable();
            let mut sink = Vec::new();
            write(b"line\n", false, &mut sink).expect("write");
            let d = due().expect("due");
            // Not yet due: stays buffered.
            flush_if_due(d - Duration::from_millis(1));
            assert_eq!(due(), Some(d));
            // Due: written (to stderr) and gone from the buffer.
            flush_if_due(d);
            assert_eq!(due(), None);
        });
    }
}
