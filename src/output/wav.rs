//! The built-in synth rendered offline to a WAV file: an [`Output`] whose audio follows the
//! playback clock. Each [`Output::advance`] renders the audio up to that time, each message
//! is applied at the frame it reaches, and closing adds the tail so that notes ring out. On
//! the step clock (`render`), the same input gives the same bytes however fast it is read.
//!
//! The synth renders on a thread of its own ([`SynthBehind`]), overlapping with the
//! pipeline that drives it. A file is written behind, on a further thread
//! ([`WavOutput::create`]), so that the kernel's side of writing overlaps with synthesis;
//! any seekable writer also works ([`WavOutput::to_writer`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::Path;
use std::thread::JoinHandle;

use crate::mapping::schema::Mapping;
use crate::message::Message;
use crate::synth::behind::SynthBehind;
use crate::synth::control::VoiceMap;
use crate::synth::render::{OfflineSynth, RenderError, RenderOptions, RenderReport};

use super::{Output, OutputReport};

/// A writer the WAV can go to.
pub trait WavSink: Write + Seek + Send {}
impl<T: Write + Seek + Send> WavSink for T {}

/// The built-in synth playing a mapping's `synth` outputs into a WAV.
pub struct WavOutput {
    synth: Option<SynthBehind>,
    /// The write-behind thread, for a file.
    written: Option<JoinHandle<io::Result<()>>>,
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
        let (writer, written) = WriteBehind::new(file);
        let mut out = WavOutput::to_writer(writer, mapping, opts)?;
        out.written = Some(written);
        out.name = path.display().to_string();
        Ok(out)
    }

    /// Renders `mapping`'s synth outputs to `out`.
    pub fn to_writer(
        out: impl WavSink + 'static,
        mapping: &Mapping,
        opts: &RenderOptions,
    ) -> Result<Self, RenderError> {
        opts.validate()?;
        let map = voices(mapping)?;
        let patches = match &opts.patches {
            Some(p) => p.clone(),
            None => mapping.synth_patches(),
        };
        let out: Box<dyn WavSink> = Box::new(out);
        let synth = OfflineSynth::new(map.clone(), &patches, opts.sample_rate, opts.format, out)?;
        Ok(WavOutput {
            synth: Some(SynthBehind::new(synth, map)),
            written: None,
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

    /// Finalises the WAV and waits for the file to be written.
    fn finish(&mut self) {
        let Some(mut synth) = self.synth.take() else {
            self.join();
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
        self.join();
    }

    /// Waits for the write-behind thread; a failed write is its own error, not the broken
    /// channel it left behind.
    fn join(&mut self) {
        if let Some(h) = self.written.take() {
            let done = h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the WAV writer thread panicked")));
            if let Err(e) = done {
                self.error = Some(format!(
                    "rendering {}: {}",
                    self.name,
                    RenderError::Wav(hound::Error::IoError(e))
                ));
            }
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

/// A file written on a second thread: bytes are gathered into large chunks, which the
/// thread writes in order. Seeks (the WAV header, at the end) are sent the same way; the
/// position is tracked here. The thread's result comes from the handle
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

    fn new(mut file: File) -> (WriteBehind, JoinHandle<io::Result<()>>) {
        // At most a few chunks in flight: memory stays flat however long the render.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(4);
        let handle = std::thread::spawn(move || {
            // The file is written over in place (see `WavOutput::create`) and cut to what
            // was written at the end.
            // A failed write still cuts the file there: no old bytes after the new ones.
            let (mut pos, mut end) = (0u64, 0u64);
            let written = || -> io::Result<()> {
                for chunk in rx {
                    match chunk {
                        Chunk::Bytes(b) => {
                            file.write_all(&b)?;
                            pos += b.len() as u64;
                            end = end.max(pos);
                        }
                        Chunk::Seek(at) => {
                            file.seek(io::SeekFrom::Start(at))?;
                            pos = at;
                        }
                    }
                }
                Ok(())
            };
            let done = written();
            let cut = file.set_len(end);
            done.and(cut).and_then(|()| file.flush())
        });
        let writer = WriteBehind {
            tx: Some(tx),
            buf: Vec::with_capacity(Self::CHUNK),
            pos: 0,
        };
        (writer, handle)
    }

    fn send(&mut self, chunk: Chunk) -> io::Result<()> {
        let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the WAV writer stopped");
        self.tx
            .as_ref()
            .ok_or_else(gone)?
            .send(chunk)
            .map_err(|_| gone())
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(Self::CHUNK));
        self.send(Chunk::Bytes(full))
    }
}

impl Write for WriteBehind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() + data.len() > Self::CHUNK {
            self.send_buf()?;
        }
        self.buf.extend_from_slice(data);
        self.pos += data.len() as u64;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

impl Seek for WriteBehind {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let at = match to {
            io::SeekFrom::Start(at) => at,
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "seek before the start")
            })?,
            io::SeekFrom::End(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
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
