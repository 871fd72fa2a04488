//! The built-in synth rendered offline to a WAV file: an [`Output`] whose audio follows the
//! playback clock. Each [`Output::advance`] renders the audio up to that time, each message
//! is applied at the frame it reaches, and closing adds the tail so that notes ring out. On
//! the step clock (`render`), the same input gives the same bytes however fast it is read.
//!
//! The synth renders on a thread of its own ([`SynthBehind`]), overlapping with the
//! pipeline that drives it. Its spans are encoded and written on a further thread
//! ([`EncodeBehind`]), so that neither the conversion to 16-bit nor the kernel's side of
//! writing holds up synthesis. A file ([`WavOutput::create`]) or any seekable writer
//! ([`WavOutput::to_writer`]) works.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::mapping::schema::Mapping;
use crate::message::Message;
use crate::synth::behind::SynthBehind;
use crate::synth::control::VoiceMap;
use crate::synth::render::{
    FrameSink, Frames, OfflineSynth, RenderError, RenderOptions, RenderReport, WavEncoder,
    WavFormat, SPAN,
};

use super::{Output, OutputReport};

/// A writer the WAV can go to.
pub trait WavSink: Write + Seek + Send {}
impl<T: Write + Seek + Send> WavSink for T {}

/// The built-in synth playing a mapping's `synth` outputs into a WAV.
pub struct WavOutput {
    synth: Option<SynthBehind>,
    /// What the WAV is called in errors.
    name: String,
    sample_rate: f64,
    tail_frames: u64,
    /// The last time the clock was advanced to.
    now: Option<f64>,
    error: Option<String>,
    report: Option<RenderReport>,
}

impl WavOutput {
    /// Renders `mapping`'s synth outputs to a new file at `path`, written behind on a thread.
    pub fn create(
        path: &Path,
        mapping: &Mapping,
        opts: &RenderOptions,
    ) -> Result<Self, RenderError> {
        opts.validate()?;
        // Checked before the file is made: no synth, no file.
        voices(mapping)?;
        // Opened without truncating: an existing file is written over in place and cut to
        // length at the end, which spares the kernel dropping its cached pages first and
        // writing them all back when it closes (ext4 does that for a file truncated to zero).
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| RenderError::Create {
                path: path.to_path_buf(),
                source,
            })?;
        let file = BufWriter::with_capacity(1 << 18, CutFile::new(file));
        let mut out = WavOutput::start(file, mapping, opts, |f| {
            f.flush()?;
            f.get_mut().cut()
        })?;
        out.name = path.display().to_string();
        Ok(out)
    }

    /// Renders `mapping`'s synth outputs to `out`.
    pub fn to_writer(
        out: impl WavSink + 'static,
        mapping: &Mapping,
        opts: &RenderOptions,
    ) -> Result<Self, RenderError> {
        WavOutput::start(out, mapping, opts, |_| Ok(()))
    }

    /// Starts the synth and the encoder threads; `end` runs on `out` once the WAV is
    /// finalised, or a write has failed.
    fn start<W: WavSink + 'static>(
        out: W,
        mapping: &Mapping,
        opts: &RenderOptions,
        end: fn(&mut W) -> io::Result<()>,
    ) -> Result<Self, RenderError> {
        opts.validate()?;
        let map = voices(mapping)?;
        let patches = match &opts.patches {
            Some(p) => p.clone(),
            None => mapping.synth_patches(),
        };
        let sink = EncodeBehind::new(out, opts.sample_rate, opts.format, end);
        let synth = OfflineSynth::new(map.clone(), &patches, opts.sample_rate, sink)?;
        Ok(WavOutput {
            synth: Some(SynthBehind::new(synth, map)),
            name: "the WAV".into(),
            sample_rate: opts.sample_rate as f64,
            tail_frames: (opts.tail_ms.max(0.0) * 1e-3 * opts.sample_rate as f64).round() as u64,
            now: None,
            error: None,
            report: None,
        })
    }

    /// Stops rendering after a failed write; the first error is the one reported.
    fn fail(&mut self, e: RenderError) {
        self.synth = None;
        if self.error.is_none() {
            self.error = Some(format!("rendering {}: {e}", self.name));
        }
    }

    /// Finalises the WAV and waits for it to be written.
    fn finish(&mut self) {
        let Some(mut synth) = self.synth.take() else {
            return;
        };
        let end = synth.frame() + self.tail_frames;
        let finished = match synth.advance_to(end) {
            Ok(()) => synth.finish(),
            Err(e) => Err(e),
        };
        match finished {
            Ok(r) => self.report = Some(r),
            Err(e) => self.fail(e),
        }
    }
}

/// The voices of `mapping`'s synth outputs (an error when it has none).
fn voices(mapping: &Mapping) -> Result<VoiceMap, RenderError> {
    let map = VoiceMap::from_mapping(mapping);
    if map.total == 0 {
        return Err(RenderError::NoSynth);
    }
    Ok(map)
}

impl Output for WavOutput {
    fn send(&mut self, msg: &Message, _mapping: &Mapping) {
        if let Some(synth) = self.synth.as_mut() {
            synth.send(msg);
        }
    }

    fn set_volume(&mut self, gain: f64) -> bool {
        if let Some(synth) = self.synth.as_mut() {
            synth.set_master(gain as f32);
        }
        true
    }

    fn advance(&mut self, now: f64) {
        if self.now.is_some_and(|t| t >= now) || !now.is_finite() {
            return;
        }
        self.now = Some(now);
        let frame = (now * self.sample_rate).round() as u64;
        if let Some(synth) = self.synth.as_mut() {
            if let Err(e) = synth.advance_to(frame) {
                self.fail(e);
            }
        }
    }

    fn close(&mut self) {
        self.finish();
    }

    fn report(&mut self) -> Option<OutputReport> {
        match self.error.take() {
            Some(e) => Some(OutputReport::Failed(e)),
            None => self.report.take().map(OutputReport::Rendered),
        }
    }
}

impl Drop for WavOutput {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A span of frames on its way to the encoder.
struct Span {
    frames: Frames,
    n: usize,
}

/// A [`FrameSink`] whose spans are encoded into the WAV and written on a thread of its own.
/// The buffers travel to the thread and back: no frame is copied, and memory stays flat
/// however long the render. A failed write comes back from the next [`put`](FrameSink::put)
/// or from [`finish`](FrameSink::finish).
struct EncodeBehind {
    tx: Option<SyncSender<Span>>,
    /// Buffers free to fill: made up front, then given back by the encoder.
    spare: Receiver<Frames>,
    thread: Option<JoinHandle<Result<(), RenderError>>>,
}

impl EncodeBehind {
    /// Buffers in all, the synth's own included. All are made at the start and `put` waits
    /// for the encoder to give one back, so memory is the same for any length of render.
    const POOL: usize = 8;

    fn new<W: WavSink + 'static>(
        mut out: W,
        sample_rate: u32,
        format: WavFormat,
        end: fn(&mut W) -> io::Result<()>,
    ) -> EncodeBehind {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Span>(Self::POOL);
        let (back, spare) = std::sync::mpsc::sync_channel(Self::POOL);
        for _ in 1..Self::POOL {
            // Cannot fail: the channel has room for them all, and `spare` is alive.
            let _ = back.try_send(Frames::new(SPAN));
        }
        let thread = std::thread::Builder::new()
            .name("sonograd-wav".into())
            .spawn(move || {
                let encode = || {
                    let mut wav = WavEncoder::new(&mut out, sample_rate, format)?;
                    for mut span in rx {
                        wav.put(&mut span.frames, span.n)?;
                        // Back for reuse (never waits: the channel holds the whole pool).
                        let _ = back.try_send(span.frames);
                    }
                    wav.finish()
                };
                let encoded = encode();
                // After a failed write too: a file is cut to what was written.
                let ended = end(&mut out).map_err(|e| RenderError::Wav(hound::Error::IoError(e)));
                encoded.and(ended)
            })
            .expect("cannot start the WAV encoder thread");
        EncodeBehind {
            tx: Some(tx),
            spare,
            thread: Some(thread),
        }
    }

    /// Why the thread stopped early: only an error stops it.
    fn stopped(&mut self) -> RenderError {
        match self.join() {
            Err(e) => e,
            Ok(()) => RenderError::Output("the WAV encoder stopped".into()),
        }
    }

    /// The thread's result (it has ended, or is told to end here).
    fn join(&mut self) -> Result<(), RenderError> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(RenderError::Output(
                    "the WAV encoder thread panicked".into(),
                ))
            }),
            None => Err(RenderError::Output(
                "the WAV encoder has already stopped".into(),
            )),
        }
    }
}

impl FrameSink for EncodeBehind {
    fn put(&mut self, frames: &mut Frames, n: usize) -> Result<(), RenderError> {
        // A free buffer; when all are in flight, wait for one (or for the thread's end, and
        // then its error).
        let Ok(spare) = self.spare.recv() else {
            return Err(self.stopped());
        };
        let span = Span {
            frames: std::mem::replace(frames, spare),
            n,
        };
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(span).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    fn finish(mut self) -> Result<(), RenderError> {
        self.join()
    }
}

impl Drop for EncodeBehind {
    fn drop(&mut self) {
        // Dropped without finish (after an error): let the thread finalise what it has.
        if self.thread.is_some() {
            let _ = self.join();
        }
    }
}

/// A file written over in place, cut at the end to what was written (see
/// [`WavOutput::create`]): no bytes of a longer old file stay after the new ones.
struct CutFile {
    file: File,
    pos: u64,
    end: u64,
}

impl CutFile {
    fn new(file: File) -> CutFile {
        CutFile {
            file,
            pos: 0,
            end: 0,
        }
    }

    /// Cuts the file after the furthest byte written.
    fn cut(&mut self) -> io::Result<()> {
        self.file.set_len(self.end)?;
        self.file.flush()
    }
}

impl Write for CutFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.file.write(data)?;
        self.pos += n as u64;
        self.end = self.end.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for CutFile {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.pos = self.file.seek(to)?;
        Ok(self.pos)
    }
}
