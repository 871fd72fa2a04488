//! scsynth NRT score output (`--osc-score out.osc`): render it with
//! `scsynth -N out.osc _ out.wav 48000 WAV int16 -o 2`.
//!
//! A score is a sequence of (big-endian i32 length, OSC bundle). Step `s` plays at
//! `s · step_secs` seconds; time tags never go backwards (a message for an earlier step is
//! written at the latest time so far). The score starts with `/d_recv` of the SynthDefs at
//! time 0, plays messages through [`ScsynthVoices`] (direct scsynth mode), and ends by
//! releasing every voice one step after the last message, then a last `/c_set 0 0` after
//! [`TAIL_SECS`] that sets the render's length.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::mapping::schema::Mapping;
use crate::message::Message;
use rosc::{OscPacket, OscType};

use super::osc_packet::{encode, timetag_from_zero, PacketBuilder};
use super::scsynth::ScsynthVoices;
use super::{Output, OutputReport};

/// Seconds rendered after the voices are released.
pub const TAIL_SECS: f64 = 1.0;

/// Writing the score failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write OSC score {path}: {source}")]
pub struct ScoreError {
    /// The file.
    pub path: PathBuf,
    /// What the OS said.
    pub source: io::Error,
}

/// Bundles with time tags that never go backwards, written as length-prefixed records.
struct ScoreSink {
    out: Option<BufWriter<File>>,
    buf: Vec<u8>,
    last: f64,
    error: Option<io::Error>,
}

impl ScoreSink {
    fn write(&mut self, time: f64, packet: &OscPacket) {
        let Some(out) = &mut self.out else { return };
        self.last = time.max(self.last);
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let n = encode(packet, Some(timetag_from_zero(self.last)), &mut self.buf);
        self.buf[..4].copy_from_slice(&(n as i32).to_be_bytes());
        if let Err(e) = out.write_all(&self.buf) {
            self.error.get_or_insert(e);
        }
    }
}

/// Writes routed messages into an scsynth NRT score.
pub struct ScoreWriter {
    path: PathBuf,
    step_secs: f64,
    first_step: Option<u64>,
    sink: ScoreSink,
    voices: ScsynthVoices,
    builder: PacketBuilder,
    /// Why the score could not be written, until reported.
    error: Option<String>,
}

impl ScoreWriter {
    /// Creates the score file; each step lasts `step_secs` seconds, the first message's
    /// step plays at time 0.
    pub fn create(path: &Path, step_secs: f64) -> Result<ScoreWriter, ScoreError> {
        let file = File::create(path).map_err(|source| ScoreError {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = ScoreWriter {
            path: path.to_path_buf(),
            step_secs: step_secs.max(0.0),
            first_step: None,
            sink: ScoreSink {
                out: Some(BufWriter::new(file)),
                buf: Vec::with_capacity(1024),
                last: 0.0,
                error: None,
            },
            voices: ScsynthVoices::default(),
            builder: PacketBuilder::default(),
            error: None,
        };
        let sink = &mut w.sink;
        w.voices.load_defs(&mut |p| sink.write(0.0, p));
        Ok(w)
    }

    /// Score time of a step.
    pub fn time_of(&mut self, step: u64) -> f64 {
        let first = *self.first_step.get_or_insert(step);
        step.saturating_sub(first) as f64 * self.step_secs
    }

    /// Ends the score and writes it out. Later calls do nothing.
    pub fn finish(&mut self) -> Result<(), ScoreError> {
        if self.sink.out.is_none() {
            return Ok(());
        }
        let end = self.sink.last + self.step_secs;
        let sink = &mut self.sink;
        self.voices.release_all(&mut |p| sink.write(end, p));
        let last = self
            .builder
            .command("/c_set", [OscType::Int(0), OscType::Float(0.0)]);
        self.sink.write(end + TAIL_SECS, last);
        let result = match (self.sink.error.take(), self.sink.out.take()) {
            (Some(e), _) => Err(e),
            (None, Some(mut out)) => out.flush(),
            (None, None) => Ok(()),
        };
        result.map_err(|source| ScoreError {
            path: self.path.clone(),
            source,
        })
    }
}

impl Output for ScoreWriter {
    fn send(&mut self, msg: &Message, mapping: &Mapping) {
        let t = self.time_of(msg.step);
        let sink = &mut self.sink;
        self.voices
            .translate(msg, mapping, &mut |p| sink.write(t, p));
    }

    fn close(&mut self) {
        if let Err(e) = self.finish() {
            self.error = Some(e.to_string());
        }
    }

    fn report(&mut self) -> Option<OutputReport> {
        self.error.take().map(OutputReport::Failed)
    }
}

impl Drop for ScoreWriter {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::schema::{Metric, SynthParam};
    use crate::message::Action;

    fn pitch(step: u64, hz: f64) -> Message {
        Message {
            time: 0.0,
            step,
            epoch: 0,
            route: 0,
            output: 0,
            metric: Metric::Loss,
            layer: None,
            raw: 0.0,
            level: 0.0,
            alarm: false,
            action: Action::Synth {
                voice: 2,
                param: SynthParam::Pitch,
                value: hz,
                pan: None,
            },
        }
    }

    #[test]
    fn records_are_length_prefixed_bundles_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.osc");
        let m = Mapping {
            description: String::new(),
            outputs: vec![],
            routes: vec![],
            diagnose: Default::default(),
            controls: Default::default(),
        };
        let mut w = ScoreWriter::create(&path, 0.5).unwrap();
        w.send(&pitch(10, 220.0), &m);
        w.send(&pitch(14, 330.0), &m);
        w.send(&pitch(12, 440.0), &m); // earlier step: written at the latest time
        w.close();
        let bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        let mut seen = Vec::new();
        while at < bytes.len() {
            let n = i32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            let (_, p) = rosc::decoder::decode_udp(&bytes[at + 4..at + 4 + n]).unwrap();
            let OscPacket::Bundle(b) = p else {
                panic!("not a bundle")
            };
            let t = b.timetag.seconds as f64 + b.timetag.fractional as f64 / 4294967296.0;
            let OscPacket::Message(m) = &b.content[0] else {
                panic!("nested bundle")
            };
            seen.push((t, m.addr.clone()));
            at += 4 + n;
        }
        let addrs: Vec<&str> = seen.iter().map(|s| s.1.as_str()).collect();
        assert_eq!(
            addrs,
            ["/d_recv", "/d_recv", "/d_recv", "/s_new", "/n_set", "/n_set", "/n_set", "/c_set"]
        );
        let times: Vec<f64> = seen.iter().map(|s| s.0).collect();
        assert_eq!(times, [0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.5, 3.5]);
    }
}
