//! The built-in synthesizer: patches, voices, the real-time engine, live output through cpal
//! and offline rendering to WAV.
//!
//! Data flow: the router's [`Message`](crate::message::Message)s become [`control::Control`]s;
//! live, they cross to the audio callback through a lock-free ring ([`live::SynthOutput`]);
//! offline, [`render`] applies them at exact step times and streams the WAV out.

pub mod behind;
pub mod compare;
pub mod control;
pub mod encode;
pub mod engine;
pub mod live;
pub mod oscillator;
pub mod patch;
pub mod render;
pub(crate) mod svf;
pub mod voice;
