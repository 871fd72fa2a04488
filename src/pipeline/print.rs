//! Printing events to standard output, as readable lines or as JSON lines.

use std::io::{self, BufWriter, Stdout, Write};

use crate::event::Event;
use crate::pipeline::consume::EventConsumer;

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrintFormat {
    /// `step     12 grad_norm    fc1      0.53`
    Text,
    /// The JSON-lines recording format.
    Json,
}

/// Prints every event to stdout. A closed pipe (`| head`) ends printing quietly.
pub struct EventPrinter {
    format: PrintFormat,
    out: BufWriter<Stdout>,
    line: Vec<u8>,
}

impl EventPrinter {
    /// A printer in the given format.
    pub fn new(format: PrintFormat) -> Self {
        EventPrinter {
            format,
            out: BufWriter::new(io::stdout()),
            line: Vec::with_capacity(256),
        }
    }
}

impl EventConsumer for EventPrinter {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        match self.format {
            PrintFormat::Text => writeln!(self.out, "{event}"),
            PrintFormat::Json => {
                self.line.clear();
                event.write_json_line(&mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
