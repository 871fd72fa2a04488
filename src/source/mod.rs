//! Sources of events (the built-in trainer is its own crate, `sonograd-trainer`): the replay of a recording, a CSV export or
//! TensorBoard event files (at any pace), and the listener for other trainers.

pub mod alarm_fill;
pub mod csv;
pub mod input;
pub mod listen;
pub mod pacing;
pub mod replay;
pub mod replay_paced;
pub mod step_pace;
pub mod tensorboard;

use crate::event::Event;
pub use crate::event::EventSink;
use crate::pipeline::queue::EventSender;

impl EventSink for EventSender {
    fn emit(&mut self, event: Event) {
        self.send(event)
    }
    fn coalesced(&self) -> u64 {
        EventSender::coalesced(self)
    }
}
