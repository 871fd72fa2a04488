//! Offline rendering: messages or a whole recording to a WAV file.
//!
//! Time is the step clock: each step lasts exactly `step_ms` of output, whatever the
//! recording's wall clock says, so the same input gives the same bytes. Audio is rendered in
//! small chunks and streamed to the WAV writer: memory does not grow with the run's length.
//!
//! ```no_run
//! use sonograd::synth::render::{render_recording, RenderOptions};
//! let mapping = sonograd::mapping::check("config/default.toml").unwrap();
//! let events: Vec<sonograd::event::Event> = Vec::new();
//! render_recording(events, &mapping, &RenderOptions::default(), "out.wav".as_ref()).unwrap();
//! ```

use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use super::control::{Control, VoiceMap};
use super::engine::{Engine, EngineStats};
use super::patch::Patch;
use crate::event::Event;
use crate::mapping::schema::Mapping;
use crate::message::Message;
use crate::output::Output;
use crate::route::Router;

/// WAV sample format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 16-bit integer PCM (the default; what most players expect).
    #[default]
    Int16,
    /// 32-bit float (exact engine output).
    Float32,
}

/// How to render.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderOptions {
    /// Output time per training step, ms (default 50, like the seed: one audible tone a step).
    pub step_ms: f64,
    /// Sample rate, Hz (default 48000).
    pub sample_rate: u32,
    /// Sample format (default 16-bit).
    pub format: WavFormat,
    /// Audio after the last step, so that notes ring out, ms (default 1500).
    pub tail_ms: f64,
    /// A jump in the step counter lasts at most this many steps (default 40): a recording that
    /// skips from step 10 to 10^9 does not render hours of silence.
    pub max_gap_steps: u64,
    /// Patches per engine voice; `None`: the ones the mapping gives its synth outputs
    /// ([`Mapping::synth_patches`]).
    pub patches: Option<Vec<Patch>>,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            step_ms: 50.0,
            sample_rate: 48_000,
            format: WavFormat::Int16,
            tail_ms: 1500.0,
            max_gap_steps: 40,
            patches: None,
        }
    }
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The output file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the WAV failed.
    #[error("cannot write the WAV: {0}")]
    Wav(#[from] hound::Error),
    /// The options are unusable.
    #[error("invalid render options: {0}")]
    Options(String),
    /// The mapping has no synth output, so there is nothing to render.
    #[error("the mapping has no `kind = \"synth\"` output: nothing to render to WAV")]
    NoSynth,
}

/// What a render did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RenderReport {
    /// Frames written.
    pub frames: u64,
    /// Distinct steps seen.
    pub steps: u64,
    /// Events read.
    pub events: u64,
    /// Synth controls applied.
    pub controls: u64,
    /// What the engine's guards did.
    pub engine: EngineStats,
}

impl RenderReport {
    /// Length of the audio, seconds, at `sample_rate`.
    pub fn seconds(&self, sample_rate: u32) -> f64 {
        self.frames as f64 / sample_rate as f64
    }
}

const CHUNK: usize = 1024;

/// An engine that writes what it plays to a WAV, with a frame clock. The building block of
/// offline rendering: [`send`](Self::send) messages, [`advance_to`](Self::advance_to) a frame,
/// [`finish`](Self::finish).
pub struct OfflineSynth<W: Write + Seek> {
    engine: Engine,
    map: VoiceMap,
    writer: hound::WavWriter<W>,
    format: WavFormat,
    frame: u64,
    controls: u64,
    left: Vec<f32>,
    right: Vec<f32>,
    pcm: Vec<i16>,
}

impl<W: Write + Seek> OfflineSynth<W> {
    /// A synth for `map`'s voices playing `patches` (one per engine voice), writing stereo
    /// `format` at `sample_rate` to `out`.
    pub fn new(
        map: VoiceMap,
        patches: &[Patch],
        sample_rate: u32,
        format: WavFormat,
        out: W,
    ) -> Result<Self, RenderError> {
        if patches.len() != map.total as usize {
            return Err(RenderError::Options(format!(
                "{} patches for {} voices",
                patches.len(),
                map.total
            )));
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate,
            bits_per_sample: match format {
                WavFormat::Int16 => 16,
                WavFormat::Float32 => 32,
            },
            sample_format: match format {
                WavFormat::Int16 => hound::SampleFormat::Int,
                WavFormat::Float32 => hound::SampleFormat::Float,
            },
        };
        Ok(OfflineSynth {
            engine: Engine::new(patches, sample_rate as f32),
            map,
            writer: hound::WavWriter::new(out, spec)?,
            format,
            frame: 0,
            controls: 0,
            left: vec![0.0; CHUNK],
            right: vec![0.0; CHUNK],
            pcm: vec![0; 2 * CHUNK],
        })
    }

    /// Frames written so far.
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// Applies a message now (at the current frame). Returns false for non-synth messages.
    pub fn send(&mut self, msg: &Message) -> bool {
        match Control::from_message(msg, &self.map, 0) {
            Some(c) => {
                self.engine.apply(&c);
                self.controls += 1;
                true
            }
            None => false,
        }
    }

    /// Renders and writes audio up to (not including) frame `to`; nothing if already there.
    pub fn advance_to(&mut self, to: u64) -> Result<(), RenderError> {
        while self.frame < to {
            let n = ((to - self.frame) as usize).min(CHUNK);
            let (l, r) = (&mut self.left[..n], &mut self.right[..n]);
            self.engine.render(l, r);
            match self.format {
                WavFormat::Int16 => {
                    // Convert the whole chunk first (a loop the compiler vectorises).
                    let pcm = &mut self.pcm[..2 * n];
                    for ((frame, a), b) in pcm.chunks_exact_mut(2).zip(l.iter()).zip(r.iter()) {
                        frame[0] = to_i16(*a);
                        frame[1] = to_i16(*b);
                    }
                    let mut w = self.writer.get_i16_writer(2 * n as u32);
                    for s in pcm.iter() {
                        // SAFETY: exactly 2 * n samples are written into a writer of 2 * n.
                        unsafe { w.write_sample_unchecked(*s) };
                    }
                    w.flush()?;
                }
                WavFormat::Float32 => {
                    for i in 0..n {
                        self.writer.write_sample(l[i])?;
                        self.writer.write_sample(r[i])?;
                    }
                }
            }
            self.frame += n as u64;
        }
        Ok(())
    }

    /// What the engine's guards did so far.
    pub fn engine_stats(&self) -> EngineStats {
        self.engine.stats()
    }

    /// Controls applied so far.
    pub fn controls(&self) -> u64 {
        self.controls
    }

    /// Finalises the WAV header and returns the writer's target.
    pub fn finish(self) -> Result<(), RenderError> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// Hands the routed messages to the synth (when there is audio to make) and to every file.
fn hand_out<W: Write + Seek>(
    msgs: &mut Vec<Message>,
    synth: &mut Option<OfflineSynth<W>>,
    files: &mut [Box<dyn Output>],
    mapping: &Mapping,
) {
    for m in msgs.drain(..) {
        if let Some(synth) = synth.as_mut() {
            synth.send(&m);
        }
        for f in files.iter_mut() {
            f.send(&m, mapping);
        }
    }
}

/// Rounds half away from zero without a libm call (the engine keeps |x| ≤ 1; anything
/// else is clamped, a NaN becomes −1).
#[inline(always)]
fn to_i16(x: f32) -> i16 {
    // `if` forms compile to one `maxps`/`minps` each, and map a NaN to the bound.
    let x = if x > -1.0 { x } else { -1.0 };
    let x = if x < 1.0 { x } else { 1.0 };
    let y = x * 32767.0;
    let y = y + f32::copysign(0.5, y);
    // SAFETY: `y` is finite and within ±32767.5, so it fits an i32. (The checked cast does
    // not vectorise.)
    unsafe { y.to_int_unchecked::<i32>() as i16 }
}

/// Renders a recording (events in order) through `mapping`'s router to a WAV file at `out`.
/// See [`render_events_to`].
pub fn render_recording<I>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: &Path,
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
{
    render_recording_with(events, mapping, opts, out, &mut [])
}

/// As [`render_recording`], writing `files` (see [`render_events_with`]) in the same pass.
pub fn render_recording_with<I>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: &Path,
    files: &mut [Box<dyn Output>],
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
{
    let file = File::create(out).map_err(|source| RenderError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    let (writer, written) = WriteBehind::new(file);
    let report = render_events_with(events, mapping, opts, Some(writer), files);
    // The writer is dropped by now (finalised or abandoned): its thread has finished.
    let written = written
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the WAV writer thread panicked")));
    match (report, written) {
        (Ok(report), Ok(())) => Ok(report),
        // A failed write: its own error, not the broken channel it left behind.
        (_, Err(e)) => Err(RenderError::Wav(hound::Error::IoError(e))),
        (Err(e), Ok(())) => Err(e),
    }
}

/// A file written on a second thread, so that the kernel's side of writing (copying into the
/// page cache, allocating blocks) overlaps with synthesis: bytes are gathered into large
/// chunks, which the thread writes in order. Seeks (the WAV header, at the end) are sent the
/// same way; the position is tracked here. The thread's result comes from the handle
/// [`WriteBehind::new`] returns, once the writer is dropped.
struct WriteBehind {
    tx: Option<std::sync::mpsc::SyncSender<Chunk>>,
    buf: Vec<u8>,
    pos: u64,
}

enum Chunk {
    Bytes(Vec<u8>),
    Seek(u64),
}

impl WriteBehind {
    const CHUNK: usize = 1 << 18;

    fn new(mut file: File) -> (WriteBehind, std::thread::JoinHandle<std::io::Result<()>>) {
        // At most a few chunks in flight: memory stays flat however long the render.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        let handle = std::thread::spawn(move || {
            for chunk in rx {
                match chunk {
                    Chunk::Bytes(b) => file.write_all(&b)?,
                    Chunk::Seek(at) => {
                        file.seek(std::io::SeekFrom::Start(at))?;
                    }
                }
            }
            file.flush()
        });
        let writer = WriteBehind {
            tx: Some(tx),
            buf: Vec::with_capacity(Self::CHUNK),
            pos: 0,
        };
        (writer, handle)
    }

    fn send(&mut self, chunk: Chunk) -> std::io::Result<()> {
        let gone = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the WAV writer stopped");
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(chunk)
            .map_err(|_| gone())
    }

    fn send_buf(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK));
        self.send(Chunk::Bytes(full))
    }
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > Self::CHUNK {
            self.send_buf()?;
        }
        self.buf.extend_from_slice(data);
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buf()
    }
}

impl Seek for WriteBehind {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = match to {
            std::io::SeekFrom::Start(at) => at,
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            std::io::SeekFrom::End(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the WAV writer does not seek from the end",
                ))
            }
        };
        if at != self.pos {
            self.send_buf()?;
            self.send(Chunk::Seek(at))?;
            self.pos = at;
        }
        Ok(at)
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // Whatever is left (hound flushes when it finalises; an abandoned render may not).
        let _ = self.send_buf();
        self.tx = None;
    }
}

/// Renders events to any seekable writer: step `s` starts at `(s - first) × step_ms`
/// (gaps capped at `max_gap_steps`; a step that goes backwards plays at the current time),
/// the router's clock is that time in seconds, its rate-limited messages are flushed at every
/// step boundary, and `tail_ms` of audio follows the last step.
pub fn render_events_to<I, W>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: W,
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
    W: Write + Seek,
{
    render_events_with(events, mapping, opts, Some(out), &mut [])
}

/// As [`render_events_to`], also handing every routed message to `files` (a MIDI file, an
/// OSC score) in the same pass, on the same step clock; they are closed at the end. With no
/// `out`, no audio is made and the mapping needs no synth output (files only).
pub fn render_events_with<I, W>(
    events: I,
    mapping: &Mapping,
    opts: &RenderOptions,
    out: Option<W>,
    files: &mut [Box<dyn Output>],
) -> Result<RenderReport, RenderError>
where
    I: IntoIterator<Item = Event>,
    W: Write + Seek,
{
    if !(opts.step_ms.is_finite() && opts.step_ms > 0.0 && opts.step_ms <= 60_000.0) {
        return Err(RenderError::Options(format!(
            "step_ms must be in (0, 60000], not {}",
            opts.step_ms
        )));
    }
    if !(1000..=384_000).contains(&opts.sample_rate) {
        return Err(RenderError::Options(format!(
            "sample_rate must be in 1000..=384000, not {}",
            opts.sample_rate
        )));
    }
    let mut synth = match out {
        Some(out) => {
            let map = VoiceMap::from_mapping(mapping);
            if map.total == 0 {
                return Err(RenderError::NoSynth);
            }
            let patches = match &opts.patches {
                Some(p) => p.clone(),
                None => mapping.synth_patches(),
            };
            Some(OfflineSynth::new(
                map,
                &patches,
                opts.sample_rate,
                opts.format,
                out,
            )?)
        }
        None => None,
    };
    let frames_per_step = opts.step_ms * 1e-3 * opts.sample_rate as f64;
    let frame_at = |pos: u64| (pos as f64 * frames_per_step).round() as u64;
    let secs_at = |pos: u64| pos as f64 * opts.step_ms * 1e-3;

    let mut router = Router::new(mapping);
    let mut msgs: Vec<Message> = Vec::new();
    let mut report = RenderReport::default();
    let mut prev: Option<u64> = None;
    let mut pos: u64 = 0;
    for ev in events {
        report.events += 1;
        if prev != Some(ev.step) {
            if let Some(p) = prev {
                if ev.step > p {
                    pos += (ev.step - p).min(opts.max_gap_steps.max(1));
                }
            }
            prev = Some(ev.step);
            report.steps += 1;
            if let Some(synth) = synth.as_mut() {
                synth.advance_to(frame_at(pos))?;
            }
            router.tick(secs_at(pos), &mut msgs);
            hand_out(&mut msgs, &mut synth, files, mapping);
        }
        router.route(secs_at(pos), &ev, &mut msgs);
        hand_out(&mut msgs, &mut synth, files, mapping);
    }
    if prev.is_some() {
        pos += 1;
        if let Some(synth) = synth.as_mut() {
            synth.advance_to(frame_at(pos))?;
        }
        router.finish(secs_at(pos), &mut msgs);
        hand_out(&mut msgs, &mut synth, files, mapping);
    }
    if let Some(mut synth) = synth {
        let tail = (opts.tail_ms.max(0.0) * 1e-3 * opts.sample_rate as f64).round() as u64;
        synth.advance_to(synth.frame() + tail)?;
        report.frames = synth.frame();
        report.controls = synth.controls();
        report.engine = synth.engine_stats();
        synth.finish()?;
    }
    for f in files.iter_mut() {
        f.close();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Layer, Payload};

    fn events(steps: u64) -> Vec<Event> {
        (0..steps)
            .flat_map(|s| {
                let mut v: Vec<Event> = (0..4u32)
                    .map(|l| {
                        let value = 10f64.powf(((s as f64) * 0.05 * (l + 1) as f64).sin() * 2.0);
                        let layer = Layer::new(format!("fc{l}"), l);
                        Event::new(s, 0, 0.0, Payload::GradNorm { layer, value })
                    })
                    .collect();
                v.push(Event::new(s, 0, 0.0, Payload::Loss { value: 1.0 }));
                v
            })
            .collect()
    }

    fn mapping() -> Mapping {
        crate::mapping::check(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap()
    }

    /// The file written behind, on its own thread, holds exactly the bytes rendered in memory.
    #[test]
    fn written_behind_file_is_the_in_memory_render() {
        let opts = RenderOptions::default();
        let dir = std::env::temp_dir().join(format!("sonograd-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.wav");
        let a = render_recording(events(300), &mapping(), &opts, &path).unwrap();
        let mut mem = std::io::Cursor::new(Vec::new());
        let b = render_events_to(events(300), &mapping(), &opts, &mut mem).unwrap();
        assert_eq!(a, b);
        let file = std::fs::read(&path).unwrap();
        assert!(file.len() > 1 << 20, "{} bytes", file.len());
        assert!(file == mem.into_inner(), "the files differ");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A write that fails is reported as the render's error, with the OS's reason.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_failing_write_is_an_error() {
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let err = render_recording(events(50), &mapping(), &RenderOptions::default(), full)
            .unwrap_err()
            .to_string();
        assert!(err.contains("space"), "{err}");
    }
}
