//! Sources of events: the built-in trainer, the replay of a recording, a CSV export or
//! TensorBoard event files (at any pace), and the listener for other trainers.

pub mod csv;
pub mod input;
pub mod listen;
pub mod pacing;
pub mod replay;
pub mod replay_paced;
pub mod step_pace;
pub mod tensorboard;
/// The built-in trainer (the `train` feature; its own crate, `sonograd-trainer`, so that only
/// the `sonograd-train` binary links libtorch).
#[cfg(feature = "train")]
pub use sonograd_trainer as train;

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
