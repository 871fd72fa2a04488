//! Sources of events: the built-in trainer, the replay of a recording or a CSV export (at any
//! pace), and the listener for other trainers.

pub mod csv;
pub mod listen;
pub mod pacing;
pub mod replay;
pub mod replay_paced;
pub mod train;
