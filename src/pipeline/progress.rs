//! The progress bar on stderr: step, loss, total norm and steps/s, drawn by the consumer
//! thread so the trainer never pays for it.

use std::io;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::event::{Event, Payload};
use crate::pipeline::consume::EventConsumer;

/// Shows training progress from the events it sees.
pub(crate) struct Progress {
    bar: ProgressBar,
    loss: f64,
    norm: f64,
}

impl Progress {
    /// A bar for `steps` steps, drawn on stderr only when it is a terminal.
    pub(crate) fn new(steps: u64) -> Self {
        let bar =
            ProgressBar::with_draw_target(Some(steps), ProgressDrawTarget::stderr_with_hz(10));
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} step {pos}/{len} {msg} {per_sec} [{elapsed_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            loss: f64::NAN,
            norm: f64::NAN,
        }
    }
}

impl EventConsumer for Progress {
    fn event(&mut self, event: &Event) -> io::Result<()> {
        match event.payload {
            Payload::Loss { value } => self.loss = value,
            Payload::TotalNorm { value } => self.norm = value,
            _ => return Ok(()),
        }
        self.bar.set_position(event.step + 1);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.bar
            .set_message(format!("loss {:.4} norm {:.3e}", self.loss, self.norm));
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        self.bar.finish_and_clear();
        Ok(())
    }
}
