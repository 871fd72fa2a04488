//! Standard MIDI File output (`--midi-file out.mid`).
//!
//! Steps become ticks at a fixed tempo: step `s` is at tick `s · ppq / steps_per_beat`;
//! note lengths (milliseconds) become ticks at `bpm`. The file is format 1: track 0 holds
//! the tempo, then one track per layer (named after it, in layer-index order) and a last
//! track for messages without a layer. The bytes depend only on the messages: the same run
//! always writes the same file.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::mapping::schema::Mapping;
use crate::message::Message;
use midly::num::{u15, u24, u28, u4, u7};
use midly::{
    Format, Header, MetaMessage, MidiMessage, PitchBend, Timing, TrackEvent, TrackEventKind,
};

use super::midi_wire::{expand, Wire};
use super::{Output, OutputReport};

/// Writing the file failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write MIDI file {path}: {source}")]
pub struct MidiFileError {
    /// The file.
    pub path: PathBuf,
    /// What the OS said.
    pub source: io::Error,
}

/// How steps and milliseconds become ticks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MidiFileConfig {
    /// Ticks per quarter note.
    pub ppq: u16,
    /// Tempo in quarter notes per minute.
    pub bpm: f64,
    /// Training steps per quarter note.
    pub steps_per_beat: f64,
}

impl Default for MidiFileConfig {
    fn default() -> Self {
        MidiFileConfig {
            ppq: 480,
            bpm: 120.0,
            steps_per_beat: 4.0,
        }
    }
}

impl MidiFileConfig {
    /// Tick of a training step.
    pub fn step_tick(&self, step: u64) -> u64 {
        (step as f64 * self.ppq as f64 / self.steps_per_beat).round() as u64
    }

    /// Ticks of a length in milliseconds (at least 1).
    pub fn ms_ticks(&self, ms: u32) -> u64 {
        ((ms as f64 / 1000.0) * (self.bpm / 60.0) * self.ppq as f64)
            .round()
            .max(1.0) as u64
    }
}

/// Which track: a layer index, or the no-layer track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TrackKey {
    Layer(u32),
    Global,
}

/// A track's name and its events: (tick, arrival order, message).
type Track = (String, Vec<(u64, u64, Wire)>);

/// Collects messages and writes the file on [`MidiFileWriter::finish`] (or close).
pub struct MidiFileWriter {
    path: PathBuf,
    config: MidiFileConfig,
    /// Per track: (tick, order, message). Order keeps same-tick events in arrival order.
    tracks: BTreeMap<TrackKey, Track>,
    /// Per channel and note: the tick a sounding note ends at, and its track.
    sounding: Vec<Option<(u64, TrackKey)>>,
    order: u64,
    written: bool,
    error: Option<MidiFileError>,
}

impl MidiFileWriter {
    /// A writer to `path`, written when finished.
    pub fn new(path: &Path, config: MidiFileConfig) -> MidiFileWriter {
        MidiFileWriter {
            path: path.to_path_buf(),
            config,
            tracks: BTreeMap::new(),
            sounding: vec![None; 16 * 128],
            order: 0,
            written: false,
            error: None,
        }
    }

    fn push(&mut self, key: TrackKey, name: &str, tick: u64, wire: Wire) {
        self.order += 1;
        self.tracks
            .entry(key)
            .or_insert_with(|| (name.to_string(), Vec::new()))
            .1
            .push((tick, self.order, wire));
    }

    /// Adds one message.
    pub fn add(&mut self, msg: &Message) {
        let Some(e) = expand(&msg.action) else {
            return;
        };
        let (key, name) = match &msg.layer {
            Some(l) => (TrackKey::Layer(l.index), l.name.to_string()),
            None => (TrackKey::Global, "sonograd".to_string()),
        };
        let tick = self.config.step_tick(msg.step);
        for (i, &w) in e.immediate().iter().enumerate() {
            if let (Wire::NoteOn { ch, note, .. }, Some(ms), 0) = (w, e.off_after_ms, i) {
                let idx = ch as usize * 128 + note as usize;
                // A note struck again while sounding ends first (no overlapping same notes).
                if let Some((end, k)) = self.sounding[idx] {
                    if end > tick {
                        self.push(k, "", tick, Wire::NoteOff { ch, note });
                        self.drop_off(k, idx, end);
                    }
                }
                let end = tick + self.config.ms_ticks(ms);
                self.sounding[idx] = Some((end, key));
                self.push(key, &name, tick, w);
                self.push(key, &name, end, Wire::NoteOff { ch, note });
            } else {
                self.push(key, &name, tick, w);
            }
        }
    }

    /// Removes the scheduled off at `end` of note `idx` (it was ended early).
    fn drop_off(&mut self, key: TrackKey, idx: usize, end: u64) {
        let (ch, note) = ((idx / 128) as u8, (idx % 128) as u8);
        if let Some((_, events)) = self.tracks.get_mut(&key) {
            if let Some(pos) = events
                .iter()
                .rposition(|&(t, _, w)| t == end && w == Wire::NoteOff { ch, note })
            {
                events.remove(pos);
            }
        }
    }

    /// The file's bytes for the messages so far.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tempo = (60_000_000.0 / self.config.bpm)
            .round()
            .clamp(1.0, 16_777_215.0) as u32;
        let mut tracks: Vec<Vec<TrackEvent>> = Vec::with_capacity(self.tracks.len() + 1);
        tracks.push(vec![
            ev(0, TrackEventKind::Meta(MetaMessage::Tempo(u24::new(tempo)))),
            ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)),
        ]);
        for (name, events) in self.tracks.values() {
            let mut sorted = events.clone();
            // Offs before ons at the same tick, then arrival order: deterministic.
            sorted.sort_by_key(|&(t, o, w)| (t, !matches!(w, Wire::NoteOff { .. }), o));
            let mut track = Vec::with_capacity(sorted.len() + 2);
            track.push(ev(
                0,
                TrackEventKind::Meta(MetaMessage::TrackName(name.as_bytes())),
            ));
            let mut last = 0;
            for (t, _, w) in sorted {
                track.push(ev(t - last, wire_kind(w)));
                last = t;
            }
            track.push(ev(0, TrackEventKind::Meta(MetaMessage::EndOfTrack)));
            tracks.push(track);
        }
        let header = Header::new(
            Format::Parallel,
            Timing::Metrical(u15::new(self.config.ppq)),
        );
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = midly::write_std(&header, tracks.iter(), &mut out);
        out
    }

    /// Writes the file (once). Later calls return `Ok` without writing again.
    pub fn finish(&mut self) -> Result<(), MidiFileError> {
        if self.written {
            return Ok(());
        }
        self.written = true;
        let bytes = self.to_bytes();
        std::fs::File::create(&self.path)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|source| MidiFileError {
                path: self.path.clone(),
                source,
            })
    }

    /// The error of a close that could not write the file.
    pub fn take_error(&mut self) -> Option<MidiFileError> {
        self.error.take()
    }
}

fn ev(delta: u64, kind: TrackEventKind) -> TrackEvent {
    TrackEvent {
        delta: u28::new(delta.min(0x0FFF_FFFF) as u32),
        kind,
    }
}

fn wire_kind(w: Wire) -> TrackEventKind<'static> {
    let (ch, message) = match w {
        Wire::NoteOn { ch, note, vel } => (
            ch,
            MidiMessage::NoteOn {
                key: u7::new(note),
                vel: u7::new(vel),
            },
        ),
        Wire::NoteOff { ch, note } => (
            ch,
            MidiMessage::NoteOff {
                key: u7::new(note),
                vel: u7::new(0),
            },
        ),
        Wire::Cc { ch, cc, value } => (
            ch,
            MidiMessage::Controller {
                controller: u7::new(cc),
                value: u7::new(value),
            },
        ),
        Wire::Bend { ch, value } => (
            ch,
            MidiMessage::PitchBend {
                bend: PitchBend(midly::num::u14::new(value)),
            },
        ),
        Wire::Program { ch, program } => (
            ch,
            MidiMessage::ProgramChange {
                program: u7::new(program),
            },
        ),
    };
    TrackEventKind::Midi {
        channel: u4::new(ch),
        message,
    }
}

impl Output for MidiFileWriter {
    fn send(&mut self, msg: &Message, _mapping: &Mapping) {
        if !self.written {
            self.add(msg);
        }
    }

    fn close(&mut self) {
        if let Err(e) = self.finish() {
            self.error = Some(e);
        }
    }

    fn report(&mut self) -> Option<OutputReport> {
        self.take_error()
            .map(|e| OutputReport::Failed(e.to_string()))
    }
}

impl Drop for MidiFileWriter {
    fn drop(&mut self) {
        if !self.written {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::schema::Metric;
    use crate::message::{Action, LayerRef};

    fn note(step: u64, layer: u32, note: u8, length_ms: u32) -> Message {
        Message {
            time: 0.0,
            step,
            epoch: 0,
            route: 0,
            output: 0,
            metric: Metric::GradNorm,
            layer: Some(LayerRef {
                index: layer,
                name: format!("l{layer}").into(),
            }),
            raw: 1.0,
            level: 0.5,
            alarm: false,
            action: Action::Note {
                channel: 1 + layer as u8,
                note,
                velocity: 100,
                length_ms,
            },
        }
    }

    #[test]
    fn tracks_per_layer_ticks_per_step_and_same_bytes_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unused.mid");
        let make = || {
            let mut w = MidiFileWriter::new(&path, MidiFileConfig::default());
            w.add(&note(1, 1, 64, 250));
            w.add(&note(0, 0, 60, 250));
            w.add(&note(2, 0, 60, 1000)); // restrike? no: the first ended at tick 240
            w.add(&note(3, 0, 60, 250)); // restrike while sounding: ended at tick 360
            w.to_bytes()
        };
        let bytes = make();
        assert_eq!(bytes, make());
        let smf = midly::Smf::parse(&bytes).unwrap();
        assert_eq!(smf.tracks.len(), 3);
        let abs = |t: &Vec<TrackEvent>| {
            let mut at = 0;
            t.iter()
                .filter_map(|e| {
                    at += e.delta.as_int();
                    match e.kind {
                        TrackEventKind::Midi {
                            message: MidiMessage::NoteOn { key, .. },
                            ..
                        } => Some((at, key.as_int(), true)),
                        TrackEventKind::Midi {
                            message: MidiMessage::NoteOff { key, .. },
                            ..
                        } => Some((at, key.as_int(), false)),
                        _ => None,
                    }
                })
                .collect::<Vec<_>>()
        };
        // 120 bpm, 480 ppq: 250 ms = 240 ticks; a step is 120 ticks.
        assert_eq!(
            abs(&smf.tracks[1]),
            vec![
                (0, 60, true),
                (240, 60, false),
                (240, 60, true),
                (360, 60, false),
                (360, 60, true),
                (600, 60, false)
            ]
        );
        assert_eq!(abs(&smf.tracks[2]), vec![(120, 64, true), (360, 64, false)]);
    }
}
