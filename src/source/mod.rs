//! Sources of events: the built-in trainer and the replay of a recording.

pub mod replay;
pub mod train;
