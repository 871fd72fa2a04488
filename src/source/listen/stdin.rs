//! JSON lines on stdin (or any reader): one event per line, lines longer than the limit are
//! skipped up to their newline and counted, so memory stays bounded whatever arrives.

use std::io::{self, BufRead};
use std::sync::atomic::{AtomicBool, Ordering};

use super::decode::decode_json_line;
use super::intake::{InputReport, Intake};

/// A line read by [`read_bounded_lines`].
#[derive(Debug, PartialEq)]
pub(crate) enum Line<'a> {
    /// A complete line, without its newline.
    Text(&'a [u8]),
    /// A line longer than the limit: its length and its first bytes.
    TooLong(usize, &'a [u8]),
}

/// Reads `reader` line by line, never holding more than `max` bytes of a line, until EOF or
/// until `on_line` returns false. A last line without newline counts as a line.
pub(crate) fn read_bounded_lines<R: BufRead>(
    mut reader: R,
    max: usize,
    on_line: &mut dyn FnMut(Line<'_>) -> bool,
) -> io::Result<()> {
    let mut line: Vec<u8> = Vec::new();
    // Length of an over-long line being skipped, once the limit was passed.
    let mut skipping: Option<usize> = None;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            match skipping {
                Some(len) => on_line(Line::TooLong(len, &line)),
                None if !line.is_empty() => on_line(Line::Text(&line)),
                None => true,
            };
            return Ok(());
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(available.len());
        match skipping.as_mut() {
            Some(len) => *len += take,
            None if line.len() + take > max => {
                let total = line.len() + take;
                let keep = max.min(64).saturating_sub(line.len());
                line.extend_from_slice(&available[..keep.min(take)]);
                skipping = Some(total);
            }
            None => line.extend_from_slice(&available[..take]),
        }
        let consumed = newline.map_or(take, |i| i + 1);
        reader.consume(consumed);
        if newline.is_some() {
            let go_on = match skipping.take() {
                Some(len) => on_line(Line::TooLong(len, &line)),
                None => on_line(Line::Text(&line)),
            };
            line.clear();
            if !go_on {
                return Ok(());
            }
        }
    }
}

/// Reads JSON lines from `reader` into the intake until EOF or `stop`.
pub(crate) fn receive<R: BufRead>(
    reader: R,
    max_line: usize,
    intake: &mut Intake,
    stop: &AtomicBool,
) -> InputReport {
    let result = read_bounded_lines(reader, max_line, &mut |line| {
        intake.report.units += 1;
        let alive = match line {
            Line::Text(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => {
                intake.report.units -= 1;
                true
            }
            Line::Text(bytes) => intake.accept(decode_json_line(bytes), bytes),
            Line::TooLong(len, head) => {
                intake.reject_oversized(len, max_line, head);
                true
            }
        };
        alive && !stop.load(Ordering::Relaxed)
    });
    if let Err(e) = result {
        intake.note_io_error(&e);
    }
    std::mem::take(&mut intake.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut got = Vec::new();
        // A tiny buffer makes lines span many fill_buf calls.
        let reader = io::BufReader::with_capacity(3, input);
        read_bounded_lines(reader, max, &mut |l| {
            got.push(match l {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong(n, _) => format!("<too long {n}>"),
            });
            true
        })
        .unwrap();
        got
    }

    #[test]
    fn lines_are_split_and_long_ones_skipped() {
        assert_eq!(lines(b"ab\ncd\n", 10), vec!["ab", "cd"]);
        assert_eq!(lines(b"ab\ncd", 10), vec!["ab", "cd"]);
        assert_eq!(
            lines(b"ab\n0123456789012\nok\n", 10),
            vec!["ab", "<too long 13>", "ok"]
        );
        assert_eq!(lines(b"0123456789012", 10), vec!["<too long 13>"]);
        assert_eq!(lines(b"\n\n", 10), vec!["", ""]);
        assert_eq!(lines(b"", 10), Vec::<String>::new());
    }
}
