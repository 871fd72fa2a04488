//! Live playback through cpal (ALSA, JACK, …): device listing and choice, a fixed buffer
//! size request, and [`SynthOutput`], which hands controls to the audio callback through a
//! lock-free ring.
//!
//! The callback only pops controls, applies them and renders: no allocation, no lock, no
//! blocking call (see `tests/alloc_free.rs`, which runs it under a forbidding allocator via
//! [`LiveOptions::rt_hook`]). It measures the hand-over latency of every control and counts
//! late callbacks (underruns); [`SynthOutput::close`] reports both.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use super::control::{control_channel, nanos_since, Control, LatencyStats, VoiceMap};
use super::engine::Engine;
use super::patch::Patch;
use crate::mapping::schema::Mapping;
use crate::message::Message;

/// Default buffer size request, frames.
pub const DEFAULT_BUFFER_FRAMES: u32 = 256;

/// One output device as `sonograd devices` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceInfo {
    /// Host (audio API) name, e.g. `JACK`, `ALSA`.
    pub host: String,
    /// Stable id to pass to `--audio-device`, e.g. `jack:output`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Whether it is its host's default output.
    pub is_default: bool,
    /// Default configuration (`2 ch, 48000 Hz, f32`), or why it has none.
    pub config: String,
}

/// A host and its output devices, or why it could not be listed.
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// Host name.
    pub host: String,
    /// Its output devices, or the error that prevented listing them.
    pub devices: Result<Vec<DeviceInfo>, String>,
}

/// Lists every available host and its output devices (the `devices` subcommand).
pub fn list_devices() -> Vec<HostInfo> {
    cpal::available_hosts()
        .into_iter()
        .map(|id| {
            let host_name = id.name().to_string();
            let devices = cpal::host_from_id(id)
                .map_err(|e| e.to_string())
                .and_then(|host| {
                    let default_id = host.default_output_device().and_then(|d| d.id().ok());
                    let devs = host.output_devices().map_err(|e| e.to_string())?;
                    Ok(devs
                        .map(|d| {
                            let id = d.id().ok();
                            DeviceInfo {
                                host: host_name.clone(),
                                id: id.as_ref().map_or_else(|| "?".into(), |i| i.to_string()),
                                name: d
                                    .description()
                                    .map(|x| x.name().to_string())
                                    .unwrap_or_else(|_| "?".into()),
                                is_default: id.is_some() && id == default_id,
                                config: match d.default_output_config() {
                                    Ok(c) => format!(
                                        "{} ch, {} Hz, {}",
                                        c.channels(),
                                        c.sample_rate(),
                                        c.sample_format()
                                    ),
                                    Err(e) => format!("no default config: {e}"),
                                },
                            }
                        })
                        .collect())
                });
            HostInfo {
                host: host_name,
                devices,
            }
        })
        .collect()
}

/// Called with `true` when the audio callback starts and `false` when it ends (tests use it
/// to forbid allocation on the audio thread). Must itself be real-time safe.
pub type RtHook = fn(bool);

/// How to open live output.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Device: an id from [`list_devices`] (`jack:output`) or part of a name
    /// (case-insensitive). `None`: the first host whose default output opens.
    pub device: Option<String>,
    /// Buffer size to request, frames (default 256). If the device refuses it (JACK uses its
    /// server's size), the device's own size is used and reported.
    pub buffer_frames: u32,
    /// Sample rate to request; `None`: the device's default.
    pub sample_rate: Option<u32>,
    /// Controls in flight at most (default 4096); more are dropped and counted.
    pub ring_capacity: usize,
    /// Patches per engine voice; `None`: the ones the mapping gives its synth outputs
    /// ([`Mapping::synth_patches`]).
    pub patches: Option<Vec<Patch>>,
    /// See [`RtHook`].
    pub rt_hook: Option<RtHook>,
    /// Hide what the audio libraries print on stderr while devices are probed (ALSA and
    /// JACK explain every device they cannot open; the error returned says it in one line).
    pub hide_backend_messages: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            device: None,
            buffer_frames: DEFAULT_BUFFER_FRAMES,
            sample_rate: None,
            ring_capacity: 4096,
            patches: None,
            rt_hook: None,
            hide_backend_messages: true,
        }
    }
}

/// Why live output could not start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No usable output device.
    #[error("no audio output device could be opened ({tried}); render to a file instead with `--wav FILE`")]
    NoDevice {
        /// What was tried and why each failed.
        tried: String,
    },
    /// The requested device does not exist.
    #[error("no audio output device matches {wanted:?} (see `sonograd devices`); or render to a file with `--wav FILE`")]
    UnknownDevice {
        /// What was asked for.
        wanted: String,
    },
    /// The mapping has no synth output.
    #[error("the mapping has no `kind = \"synth\"` output")]
    NoSynth,
    /// Options are unusable.
    #[error("invalid live options: {0}")]
    Options(String),
}

/// What a live session did, reported by [`SynthOutput::close`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveReport {
    /// Device used.
    pub device: String,
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Buffer size asked for, frames.
    pub requested_frames: u32,
    /// Buffer size granted, frames (`None` when the host does not say).
    pub granted_frames: Option<u32>,
    /// Audio callbacks run.
    pub callbacks: u64,
    /// Underruns: callbacks that came more than 1.5 buffers (+1 ms) after the previous one,
    /// plus xruns the host reported.
    pub underruns: u64,
    /// Other stream errors the host reported.
    pub stream_errors: u64,
    /// Controls sent.
    pub sent: u64,
    /// Controls dropped because the ring was full.
    pub dropped: u64,
    /// Hand-over latency (push → start of the callback that applies it), ms: p50, p99, max.
    pub latency_ms: Option<(f64, f64, f64)>,
}

#[derive(Default, Debug)]
pub(crate) struct Shared {
    latency: LatencyStats,
    callbacks: AtomicU64,
    underruns: AtomicU64,
    errors: AtomicU64,
}

/// The body of the audio callback: pops controls, applies them, renders interleaved audio,
/// records latencies and late callbacks. Real-time safe: no allocation, lock or blocking call.
pub struct AudioCallback {
    engine: Engine,
    consumer: rtrb::Consumer<Control>,
    shared: Arc<Shared>,
    origin: Instant,
    channels: usize,
    sample_rate: u64,
    last_ns: u64,
    hook: Option<RtHook>,
}

impl AudioCallback {
    /// A callback for `engine` fed by `consumer`, writing `channels` interleaved channels.
    /// Controls must carry `sent_ns` from [`AudioCallback::origin`].
    pub fn new(
        engine: Engine,
        consumer: rtrb::Consumer<Control>,
        channels: usize,
        sample_rate: u32,
    ) -> AudioCallback {
        AudioCallback {
            engine,
            consumer,
            shared: Arc::new(Shared::default()),
            origin: Instant::now(),
            channels: channels.max(1),
            sample_rate: u64::from(sample_rate.max(1)),
            last_ns: 0,
            hook: None,
        }
    }

    /// The clock origin of `sent_ns`.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// Hand-over latencies recorded so far.
    pub fn latency(&self) -> &LatencyStats {
        &self.shared.latency
    }

    /// The engine (for its statistics).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Fills one interleaved buffer.
    pub fn run(&mut self, data: &mut [f32]) {
        if let Some(h) = self.hook {
            h(true);
        }
        let now = nanos_since(self.origin);
        let period = (data.len() / self.channels) as u64 * 1_000_000_000 / self.sample_rate;
        if self.last_ns != 0 && now.saturating_sub(self.last_ns) > period * 3 / 2 + 1_000_000 {
            self.shared.underruns.fetch_add(1, Ordering::Relaxed);
        }
        self.last_ns = now;
        while let Ok(c) = self.consumer.pop() {
            self.engine.apply(&c);
            self.shared.latency.record(now.saturating_sub(c.sent_ns));
        }
        self.engine.render_interleaved(data, self.channels);
        self.shared.callbacks.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = self.hook {
            h(false);
        }
    }
}

/// The live synth: takes [`Message`]s without blocking, plays them on an audio device.
///
/// The cpal stream is owned by a thread of its own (streams cannot move between threads),
/// so a `SynthOutput` can: it holds only the ring's producer and the shared counters.
pub struct SynthOutput {
    producer: rtrb::Producer<Control>,
    map: VoiceMap,
    origin: Instant,
    shared: Arc<Shared>,
    owner: Option<StreamOwner>,
    report: LiveReport,
}

/// The thread that keeps the cpal stream alive until told to stop.
struct StreamOwner {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl StreamOwner {
    /// Stops and drops the stream, and waits for its thread.
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// What the owner thread hands back once the stream plays.
struct Started {
    producer: rtrb::Producer<Control>,
    origin: Instant,
    shared: Arc<Shared>,
    report: LiveReport,
}

struct Candidate {
    label: String,
    device: cpal::Device,
}

fn candidates(wanted: Option<&str>) -> (Vec<Candidate>, Vec<String>) {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for id in cpal::available_hosts() {
        let host = match cpal::host_from_id(id) {
            Ok(h) => h,
            Err(e) => {
                notes.push(format!("{}: {e}", id.name()));
                continue;
            }
        };
        match wanted {
            None => match host.default_output_device() {
                Some(d) => out.push(Candidate {
                    label: d
                        .id()
                        .map_or_else(|_| id.name().to_string(), |i| i.to_string()),
                    device: d,
                }),
                None => notes.push(format!("{}: no default output", id.name())),
            },
            Some(w) => {
                let w = w.to_lowercase();
                if let Ok(devs) = host.output_devices() {
                    for d in devs {
                        let did = d.id().map(|i| i.to_string()).unwrap_or_default();
                        let name = d
                            .description()
                            .map(|x| x.name().to_string())
                            .unwrap_or_default();
                        if did.to_lowercase() == w || name.to_lowercase().contains(&w) {
                            out.push(Candidate {
                                label: if did.is_empty() { name } else { did },
                                device: d,
                            });
                        }
                    }
                }
            }
        }
    }
    (out, notes)
}

impl SynthOutput {
    /// Opens live output for `mapping`'s synth outputs, playing the patches the mapping gives
    /// them (or `opts.patches`).
    pub fn open(mapping: &Mapping, opts: &LiveOptions) -> Result<SynthOutput, LiveError> {
        let map = VoiceMap::from_mapping(mapping);
        if map.total == 0 {
            return Err(LiveError::NoSynth);
        }
        let patches = match &opts.patches {
            Some(p) => p.clone(),
            None => mapping.synth_patches(),
        };
        SynthOutput::open_map(map, patches, opts)
    }

    /// Opens live output for an explicit voice layout playing `patches`, one per engine voice
    /// (`opts.patches` is not used).
    pub fn open_map(
        map: VoiceMap,
        patches: Vec<Patch>,
        opts: &LiveOptions,
    ) -> Result<SynthOutput, LiveError> {
        if opts.buffer_frames == 0 || opts.buffer_frames > 65_536 || opts.ring_capacity == 0 {
            return Err(LiveError::Options(
                "buffer_frames must be 1..=65536 and ring_capacity at least 1".into(),
            ));
        }
        if patches.len() != map.total as usize {
            return Err(LiveError::Options(format!(
                "{} patches for {} voices",
                patches.len(),
                map.total
            )));
        }
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let owner_opts = opts.clone();
        let thread = std::thread::Builder::new()
            .name("sonograd-audio".into())
            .spawn(move || {
                match Self::open_stream(&patches, &owner_opts) {
                    Ok((stream, started)) => {
                        let _ = ready_tx.send(Ok(started));
                        // Plays until the output stops (or is dropped).
                        let _ = stop_rx.recv();
                        let _ = stream.pause();
                        drop(stream);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| LiveError::Options(format!("cannot start the audio thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(started)) => Ok(SynthOutput {
                producer: started.producer,
                map,
                origin: started.origin,
                shared: started.shared,
                owner: Some(StreamOwner {
                    stop: stop_tx,
                    thread,
                }),
                report: started.report,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(LiveError::NoDevice {
                    tried: "the audio thread ended while opening the device".into(),
                })
            }
        }
    }

    /// Opens the first candidate device that works (on the owner thread).
    fn open_stream(
        patches: &[Patch],
        opts: &LiveOptions,
    ) -> Result<(cpal::Stream, Started), LiveError> {
        let _hidden = opts.hide_backend_messages.then(HiddenStderr::new);
        let (cands, mut tried) = candidates(opts.device.as_deref());
        if cands.is_empty() {
            if let Some(w) = &opts.device {
                return Err(LiveError::UnknownDevice { wanted: w.clone() });
            }
        }
        for cand in cands {
            match Self::start(&cand, patches, opts) {
                Ok(out) => return Ok(out),
                Err(e) => tried.push(format!("{}: {e}", cand.label)),
            }
        }
        Err(LiveError::NoDevice {
            tried: if tried.is_empty() {
                "no audio host found".into()
            } else {
                tried.join("; ")
            },
        })
    }

    /// Opens `cand` with the requested buffer size, or with the device's own size when it
    /// refuses that (JACK only runs at its server's size).
    fn start(
        cand: &Candidate,
        patches: &[Patch],
        opts: &LiveOptions,
    ) -> Result<(cpal::Stream, Started), String> {
        match Self::build(
            cand,
            patches,
            opts,
            cpal::BufferSize::Fixed(opts.buffer_frames),
        ) {
            Ok(out) => Ok(out),
            Err(e) if e.kind() == cpal::ErrorKind::UnsupportedConfig => {
                Self::build(cand, patches, opts, cpal::BufferSize::Default)
                    .map_err(|e2| format!("{e}; with the device's buffer size: {e2}"))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn build(
        cand: &Candidate,
        patches: &[Patch],
        opts: &LiveOptions,
        size: cpal::BufferSize,
    ) -> Result<(cpal::Stream, Started), cpal::Error> {
        let dev = &cand.device;
        let default = dev.default_output_config()?;
        let sample_rate = opts.sample_rate.unwrap_or(default.sample_rate());
        let channels = default.channels().max(1);
        let config = cpal::StreamConfig {
            channels,
            sample_rate,
            buffer_size: size,
        };
        let (producer, consumer) = control_channel(opts.ring_capacity);
        let mut callback = AudioCallback::new(
            Engine::new(patches, sample_rate as f32),
            consumer,
            channels as usize,
            sample_rate,
        );
        callback.hook = opts.rt_hook;
        let shared = Arc::clone(&callback.shared);
        let origin = callback.origin;
        let shared_err = Arc::clone(&shared);
        let stream = dev.build_output_stream::<f32, _, _>(
            config,
            move |data: &mut [f32], _info: &cpal::OutputCallbackInfo| callback.run(data),
            move |err: cpal::Error| {
                if err.kind() == cpal::ErrorKind::Xrun {
                    shared_err.underruns.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared_err.errors.fetch_add(1, Ordering::Relaxed);
                }
            },
            Some(Duration::from_secs(2)),
        )?;
        stream.play()?;
        let report = LiveReport {
            device: cand.label.clone(),
            sample_rate,
            requested_frames: opts.buffer_frames,
            granted_frames: stream.buffer_size().ok(),
            ..LiveReport::default()
        };
        Ok((
            stream,
            Started {
                producer,
                origin,
                shared,
                report,
            },
        ))
    }

    /// Which engine voices each synth output of the mapping plays.
    pub fn voice_map(&self) -> &VoiceMap {
        &self.map
    }

    /// Device, sample rate and buffer sizes (requested and granted).
    pub fn info(&self) -> &LiveReport {
        &self.report
    }

    /// Hands a message to the audio thread without blocking or allocating. Returns false for
    /// messages not for a synth output and when the ring is full (the control is dropped
    /// and counted).
    pub fn send(&mut self, msg: &Message) -> bool {
        let Some(c) = Control::from_message(msg, &self.map, nanos_since(self.origin).max(1)) else {
            return false;
        };
        self.report.sent += 1;
        if self.producer.push(c).is_err() {
            self.report.dropped += 1;
            return false;
        }
        true
    }

    /// Sets the engine's master gain (0..1); false if the ring was full.
    pub fn set_master(&mut self, gain: f32) -> bool {
        let c = Control::master(gain, nanos_since(self.origin).max(1));
        self.report.sent += 1;
        if self.producer.push(c).is_err() {
            self.report.dropped += 1;
            return false;
        }
        true
    }

    /// Stops playback and reports what happened.
    pub fn close(mut self) -> LiveReport {
        self.stop()
    }

    /// Stops playback (once; later calls only report again) and reports what happened.
    pub fn stop(&mut self) -> LiveReport {
        if let Some(owner) = self.owner.take() {
            owner.stop();
        }
        let s = &self.shared;
        let mut r = self.report.clone();
        r.callbacks = s.callbacks.load(Ordering::Relaxed);
        r.underruns = s.underruns.load(Ordering::Relaxed);
        r.stream_errors = s.errors.load(Ordering::Relaxed);
        r.latency_ms = s.latency.quantile_ms(0.5).map(|p50| {
            (
                p50,
                s.latency.quantile_ms(0.99).unwrap_or(p50),
                s.latency.max_ms(),
            )
        });
        r
    }
}

impl Drop for SynthOutput {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.take() {
            owner.stop();
        }
    }
}

/// Sends file descriptor 2 to /dev/null until dropped (while devices are probed, before the
/// run starts: nothing else prints then).
struct HiddenStderr {
    saved: Option<libc::c_int>,
}

impl HiddenStderr {
    fn new() -> HiddenStderr {
        // SAFETY: plain descriptor calls; every result is checked before use.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null < 0 {
                return HiddenStderr { saved: None };
            }
            let saved = libc::dup(2);
            if saved >= 0 && libc::dup2(null, 2) < 0 {
                libc::close(saved);
                libc::close(null);
                return HiddenStderr { saved: None };
            }
            libc::close(null);
            HiddenStderr {
                saved: (saved >= 0).then_some(saved),
            }
        }
    }
}

impl Drop for HiddenStderr {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            // SAFETY: `saved` is the descriptor dup'ed in `new`.
            unsafe {
                libc::dup2(saved, 2);
                libc::close(saved);
            }
        }
    }
}
