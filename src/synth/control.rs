//! Control values on their way from the router's thread to the audio thread.
//!
//! A [`Control`] is a small `Copy` value made from a [`Message`] with [`Control::from_message`];
//! [`control_channel`] makes the lock-free single-producer, single-consumer ring (rtrb) that
//! carries them: pushing and popping never allocate, lock or block. [`LatencyStats`] is a
//! fixed-size atomic histogram the audio thread fills with hand-over latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::mapping::schema::{Mapping, OutputKind, SynthParam};
use crate::message::{Action, Message};

/// One control value for the engine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Control {
    /// Voice in the engine (already offset for its output and wrapped).
    pub voice: u32,
    /// Parameter.
    pub param: SynthParam,
    /// Value in the parameter's unit (Hz, 0..1, −1..1; strike amplitude for triggers).
    pub value: f32,
    /// Stereo position sent with per-layer messages; NaN when none.
    pub pan: f32,
    /// When it was handed over, in ns since the output's clock origin (0 offline).
    pub sent_ns: u64,
}

/// Where each synth output's voices live in the engine: output `o` owns voices
/// `base[o] .. base[o] + count[o]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VoiceMap {
    /// Per output of the mapping: `Some((base, count))` for synth outputs.
    pub outputs: Vec<Option<(u32, u32)>>,
    /// Total number of engine voices.
    pub total: u32,
}

impl VoiceMap {
    /// Lays the voices of every synth output of `mapping` end to end, in output order.
    pub fn from_mapping(mapping: &Mapping) -> VoiceMap {
        let mut total = 0;
        let outputs = mapping
            .outputs
            .iter()
            .map(|o| match o.kind {
                OutputKind::Synth { voices, .. } => {
                    let base = total;
                    total += voices.max(1);
                    Some((base, voices.max(1)))
                }
                _ => None,
            })
            .collect();
        VoiceMap { outputs, total }
    }

    /// A map with one synth output (id 0) of `voices` voices.
    pub fn single(voices: u32) -> VoiceMap {
        VoiceMap {
            outputs: vec![Some((0, voices.max(1)))],
            total: voices.max(1),
        }
    }
}

impl Control {
    /// The voice number that addresses the engine's master gain instead of a voice.
    pub const MASTER: u32 = u32::MAX;

    /// Sets the master gain (0..1) of the whole engine: the `volume` control.
    pub fn master(gain: f32, sent_ns: u64) -> Control {
        Control {
            voice: Control::MASTER,
            param: SynthParam::Amp,
            value: gain,
            pan: f32::NAN,
            sent_ns,
        }
    }

    /// The control for a synth message of `map`'s outputs; `None` for other messages.
    pub fn from_message(msg: &Message, map: &VoiceMap, sent_ns: u64) -> Option<Control> {
        let Action::Synth {
            voice,
            param,
            value,
            pan,
        } = msg.action
        else {
            return None;
        };
        let (base, count) = (*map.outputs.get(msg.output as usize)?)?;
        Some(Control {
            voice: base + voice % count,
            param,
            value: value as f32,
            pan: pan.map_or(f32::NAN, |p| p as f32),
            sent_ns,
        })
    }
}

/// Makes the control ring: `capacity` controls in flight at most.
pub fn control_channel(capacity: usize) -> (rtrb::Producer<Control>, rtrb::Consumer<Control>) {
    rtrb::RingBuffer::new(capacity)
}

/// Nanoseconds since `origin` (saturating).
pub fn nanos_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos().min(u64::MAX as u128) as u64
}

/// Histogram bucket width, ns (50 µs).
const BUCKET_NS: u64 = 50_000;
/// Number of buckets (0..100 ms; the last one collects everything above).
const BUCKETS: usize = 2000;

/// Lock-free latency histogram: the audio thread records, any thread reads.
#[derive(Debug)]
pub struct LatencyStats {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_ns: AtomicU64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        LatencyStats {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_ns: AtomicU64::new(0),
        }
    }
}

impl LatencyStats {
    /// Records one latency (wait-free, no allocation).
    pub fn record(&self, ns: u64) {
        let i = ((ns / BUCKET_NS) as usize).min(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_ns.fetch_max(ns, Ordering::Relaxed);
    }

    /// Number recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The `q` quantile (0..1) in ms (bucket upper edge, 50 µs resolution); `None` if empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let want = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= want {
                return Some(((i as u64 + 1) * BUCKET_NS) as f64 / 1e6);
            }
        }
        Some(self.max_ns.load(Ordering::Relaxed) as f64 / 1e6)
    }

    /// Largest latency recorded, ms.
    pub fn max_ms(&self) -> f64 {
        self.max_ns.load(Ordering::Relaxed) as f64 / 1e6
    }
}
