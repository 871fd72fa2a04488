//! Sources of events: the built-in trainer, the replay of a recording, a CSV export or
//! TensorBoard event files (at any pace), and the listener for other trainers.

pub mod csv;
pub mod input;
pub mod listen;
pub mod pacing;
pub mod replay;
pub mod replay_paced;
pub mod tensorboard;
pub mod train;
