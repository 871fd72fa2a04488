//! An [`OfflineSynth`] on a thread of its own, so that synthesis overlaps with whatever
//! drives it (reading, diagnosing and routing a recording). The driver's calls are gathered
//! in order and handed over a stretch of audio at a time; the thread replays them on the
//! one synth, so the output is the same bytes as calling the synth directly.

use std::thread::JoinHandle;

use crossbeam_channel::Sender;

use super::control::{Control, VoiceMap};
use super::render::{FrameSink, OfflineSynth, RenderError, RenderReport};
use crate::message::Message;

/// Frames gathered before they are handed to the thread: about 0.7 s at 48 kHz.
const STRETCH: u64 = 32_768;
/// Stretches that may wait for the thread before the driver waits for it.
const QUEUED: usize = 4;

/// One call to replay, in order.
enum Op {
    Control(Control),
    Master(f32),
    AdvanceTo(u64),
}

/// An [`OfflineSynth`] rendering behind, on its own thread. Errors (a failed write) come
/// back from the next call that hands work over, and from [`finish`](Self::finish).
pub struct SynthBehind {
    map: VoiceMap,
    ops: Vec<Op>,
    /// The frame the driver advanced to, and the one handed over last.
    frame: u64,
    handed: u64,
    tx: Option<Sender<Vec<Op>>>,
    thread: Option<JoinHandle<Result<RenderReport, RenderError>>>,
}

impl SynthBehind {
    /// Starts the thread that drives `synth` (playing `map`'s voices).
    pub fn new<S: FrameSink + Send + 'static>(
        synth: OfflineSynth<S>,
        map: VoiceMap,
    ) -> SynthBehind {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Op>>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("sonograd-synth".into())
            .spawn(move || {
                let mut synth = synth;
                for ops in rx {
                    for op in ops {
                        match op {
                            Op::Control(c) => synth.apply(&c),
                            Op::Master(gain) => synth.set_master(gain),
                            Op::AdvanceTo(frame) => synth.advance_to(frame)?,
                        }
                    }
                }
                let report = RenderReport {
                    frames: synth.frame(),
                    steps: 0,
                    events: 0,
                    controls: synth.controls(),
                    engine: synth.engine_stats(),
                };
                synth.finish()?;
                Ok(report)
            })
            .expect("cannot start the synth thread");
        SynthBehind {
            map,
            ops: Vec::new(),
            frame: 0,
            handed: 0,
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// Applies a message at the current frame. Returns false for non-synth messages.
    pub fn send(&mut self, msg: &Message) -> bool {
        match Control::from_message(msg, &self.map, 0) {
            Some(c) => {
                self.ops.push(Op::Control(c));
                true
            }
            None => false,
        }
    }

    /// Sets the master gain (0..1) from the current frame on.
    pub fn set_master(&mut self, gain: f32) {
        self.ops.push(Op::Master(gain));
    }

    /// The frame the synth has been advanced to.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Renders up to (not including) frame `to`, behind. Fails if the thread has failed.
    pub fn advance_to(&mut self, to: u64) -> Result<(), RenderError> {
        if to > self.frame {
            self.frame = to;
            self.ops.push(Op::AdvanceTo(to));
        }
        if self.frame - self.handed >= STRETCH {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Hands what is gathered to the thread; its error if it has stopped.
    fn hand_over(&mut self) -> Result<(), RenderError> {
        self.handed = self.frame;
        let ops = std::mem::take(&mut self.ops);
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(ops).is_ok());
        if sent {
            return Ok(());
        }
        // The thread stopped early: only an error stops it.
        self.tx = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(RenderError::Output("the synth thread stopped".into())),
        }
    }

    fn join(&mut self) -> Result<RenderReport, RenderError> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(RenderError::Output("the synth thread panicked".into()))),
            None => Err(RenderError::Output(
                "the synth thread has already ended".into(),
            )),
        }
    }

    /// Renders everything handed over and finalises the WAV: what the synth did.
    pub fn finish(mut self) -> Result<RenderReport, RenderError> {
        if !self.ops.is_empty() {
            self.hand_over()?;
        }
        self.tx = None;
        self.join()
    }
}

impl Drop for SynthBehind {
    fn drop(&mut self) {
        // Dropped without finish (after an error): let the thread end.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
