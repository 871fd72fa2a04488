//! The monitor: one readable line per [`Message`], and the [`MonitorOutput`] that writes
//! them for `monitor` outputs (or for every message with `--monitor`).
//!
//! ```text
//!   12.350s step     12 pitch-per-layer  synth voice 1 pitch 440.0 Hz pan -0.33  <- grad_norm fc2 = 0.531
//! ```

use std::fmt::{self, Write};
use std::io;

use crate::mapping::schema::Mapping;
use crate::message::{expand_osc, Action, Message, OscArg};
use crate::output::Output;
use crate::route::scale::note_name;

/// Writes the monitor line of `msg` (no newline) into `w`.
pub fn write_line(w: &mut impl Write, msg: &Message, mapping: &Mapping) -> fmt::Result {
    let route = mapping
        .routes
        .get(msg.route as usize)
        .map_or("?", |r| &*r.name);
    let output = mapping
        .outputs
        .get(msg.output as usize)
        .map_or("?", |o| &*o.name);
    write!(w, "{:>9.3}s step {:>6} {:<16} ", msg.time, msg.step, route)?;
    match msg.action {
        Action::Synth {
            voice,
            param,
            value,
            pan,
        } => {
            write!(
                w,
                "{output} voice {voice} {} {value:.1}{}",
                param.name(),
                param.unit()
            )?;
            if let Some(p) = pan {
                write!(w, " pan {p:+.2}")?;
            }
        }
        Action::Note {
            channel,
            note,
            velocity,
            length_ms,
        } => {
            let (name, octave) = note_name(note);
            write!(
                w,
                "{output} ch {channel} note {note} ({name}{octave}) vel {velocity} {length_ms} ms"
            )?;
        }
        Action::Cc {
            channel,
            cc,
            value,
            fine,
        } => {
            write!(
                w,
                "{output} ch {channel} cc {cc} = {value}{}",
                if fine { " (14-bit)" } else { "" }
            )?;
        }
        Action::PitchBend { channel, value } => write!(w, "{output} ch {channel} bend {value}")?,
        Action::Program { channel, program } => {
            write!(w, "{output} ch {channel} program {program}")?
        }
        Action::Osc { .. } => {
            let mut addr = String::new();
            let mut args = Vec::new();
            expand_osc(msg, mapping, &mut addr, &mut args);
            write!(w, "{output} {addr}")?;
            for a in &args {
                match a {
                    OscArg::Float(f) => write!(w, " {f}")?,
                    OscArg::Double(d) => write!(w, " {d}")?,
                    OscArg::Int(i) => write!(w, " {i}")?,
                    OscArg::Str(s) => write!(w, " {s:?}")?,
                    OscArg::StaticStr(s) => write!(w, " {s:?}")?,
                }
            }
        }
    }
    write!(w, "  <- {}", msg.metric.name())?;
    if let Some(l) = &msg.layer {
        write!(w, " {}", l.name)?;
    }
    if msg.raw.is_finite() || msg.alarm {
        write!(w, " = {}", msg.raw)?;
    }
    if msg.alarm {
        w.write_str("  ALARM")?;
    }
    Ok(())
}

/// The monitor line of `msg` as a new string.
pub fn format(msg: &Message, mapping: &Mapping) -> String {
    let mut s = String::with_capacity(96);
    // Writing to a String cannot fail.
    let _ = write_line(&mut s, msg, mapping);
    s
}
/// Where monitor lines go.
pub type LineSink = Box<dyn io::Write + Send>;

/// Writes the monitor line of every message it is given to a [`LineSink`] (stdout for the
/// CLI). The first write error (the reader went away) stops it and is returned by
/// [`Output::flush`].
pub struct MonitorOutput {
    lines: LineSink,
    line: String,
    error: Option<io::Error>,
    closed: bool,
}

impl MonitorOutput {
    /// Writes lines to `lines`.
    pub fn new(lines: LineSink) -> Self {
        MonitorOutput {
            lines,
            line: String::with_capacity(160),
            error: None,
            closed: false,
        }
    }
}

impl Output for MonitorOutput {
    fn send(&mut self, msg: &Message, mapping: &Mapping) {
        if self.closed || self.error.is_some() {
            return;
        }
        self.line.clear();
        let _ = write_line(&mut self.line, msg, mapping);
        self.line.push('\n');
        if let Err(e) = self.lines.write_all(self.line.as_bytes()) {
            self.error = Some(e);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            self.closed = true;
            return Err(e);
        }
        if self.closed {
            return Ok(());
        }
        self.lines.flush()
    }

    fn close(&mut self) {
        if !self.closed {
            let _ = self.lines.flush();
            self.closed = true;
        }
    }
}
