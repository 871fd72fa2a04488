//! Two runs in one WAV (`sonograd render A B`): each run drives its own router and engine
//! through the same mapping, on one step clock, so that the same step of both sounds at the
//! same time. Side by side, A is mixed to mono on the left channel and B on the right;
//! alternating, each step plays A's step and then B's, each for `step_ms` (with 5 ms fades
//! between them, and both engines running all the time so that notes ring on naturally).
//!
//! Steps are merged in order: the union of both runs' steps is the clock, a gap is capped at
//! `max_gap_steps` as in [`super::render`], and a step present in one run only leaves the
//! other quiet (or ringing) at that point.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::iter::Peekable;
use std::path::Path;

use super::control::{Control, VoiceMap};
use super::engine::Engine;
use super::render::{RenderError, RenderOptions, WavFormat};
use crate::event::Event;
use crate::mapping::schema::Mapping;
use crate::message::Message;
use crate::route::Router;

/// How the two runs share the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CompareMode {
    /// At once: A on the left channel, B on the right.
    #[default]
    Side,
    /// A's step, then B's step, each centred.
    Alternate,
}

/// What a comparison render did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompareReport {
    /// Frames written.
    pub frames: u64,
    /// Distinct steps of the merged clock.
    pub steps: u64,
    /// Events of A and of B.
    pub events: (u64, u64),
}

const CHUNK: usize = 1024;
/// Mono mix of a stereo engine: equal power.
const MONO: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// Fade between alternating slots, seconds.
const FADE_S: f32 = 0.005;

struct Side<I: Iterator<Item = Event>> {
    events: Peekable<I>,
    router: Router,
    engine: Engine,
    count: u64,
}

impl<I: Iterator<Item = Event>> Side<I> {
    fn route_step(&mut self, step: u64, now: f64, map: &VoiceMap, msgs: &mut Vec<Message>) {
        self.router.tick(now, msgs);
        while let Some(e) = self.events.next_if(|e| e.step <= step) {
            self.count += 1;
            self.router.route(now, &e, msgs);
        }
        apply(&mut self.engine, map, msgs);
    }
}

fn apply(engine: &mut Engine, map: &VoiceMap, msgs: &mut Vec<Message>) {
    for m in msgs.drain(..) {
        if let Some(c) = Control::from_message(&m, map, 0) {
            engine.apply(&c);
        }
    }
}

/// Renders runs `a` and `b` (events in step order) through `mapping` into a WAV at `out`.
pub fn render_compare<A, B>(
    a: A,
    b: B,
    mapping: &Mapping,
    opts: &RenderOptions,
    mode: CompareMode,
    out: &Path,
) -> Result<CompareReport, RenderError>
where
    A: IntoIterator<Item = Event>,
    B: IntoIterator<Item = Event>,
{
    let file = File::create(out).map_err(|source| RenderError::Create {
        path: out.to_path_buf(),
        source,
    })?;
    render_compare_to(
        a,
        b,
        mapping,
        opts,
        mode,
        BufWriter::with_capacity(1 << 16, file),
    )
}

/// As [`render_compare`], into any seekable writer.
pub fn render_compare_to<A, B, W>(
    a: A,
    b: B,
    mapping: &Mapping,
    opts: &RenderOptions,
    mode: CompareMode,
    out: W,
) -> Result<CompareReport, RenderError>
where
    A: IntoIterator<Item = Event>,
    B: IntoIterator<Item = Event>,
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
    let map = VoiceMap::from_mapping(mapping);
    if map.total == 0 {
        return Err(RenderError::NoSynth);
    }
    let patches = match &opts.patches {
        Some(p) => p.clone(),
        None => mapping.synth_patches(),
    };
    let sr = opts.sample_rate as f32;
    let mut a = Side {
        events: a.into_iter().peekable(),
        router: Router::new(mapping),
        engine: Engine::new(&patches, sr),
        count: 0,
    };
    let mut b = Side {
        events: b.into_iter().peekable(),
        router: Router::new(mapping),
        engine: Engine::new(&patches, sr),
        count: 0,
    };
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: opts.sample_rate,
        bits_per_sample: match opts.format {
            WavFormat::Int16 => 16,
            WavFormat::Float32 => 32,
        },
        sample_format: match opts.format {
            WavFormat::Int16 => hound::SampleFormat::Int,
            WavFormat::Float32 => hound::SampleFormat::Float,
        },
    };
    let mut mixer = Mixer {
        writer: hound::WavWriter::new(out, spec)?,
        format: opts.format,
        frame: 0,
        bufs: [[0.0; CHUNK]; 4],
        gains: [1.0, 1.0],
        fade_step: 1.0 / (FADE_S * sr).max(1.0),
    };
    // Slots per step: one side by side, two alternating (A's, then B's).
    let slots: u64 = match mode {
        CompareMode::Side => 1,
        CompareMode::Alternate => 2,
    };
    let frames_per_slot = opts.step_ms * 1e-3 * opts.sample_rate as f64;
    let frame_at = |slot: u64| (slot as f64 * frames_per_slot).round() as u64;
    let secs_at = |slot: u64| slot as f64 * opts.step_ms * 1e-3;
    let mut msgs = Vec::new();
    let mut report = CompareReport::default();
    let mut prev: Option<u64> = None;
    let mut pos: u64 = 0;
    loop {
        let next = match (a.events.peek(), b.events.peek()) {
            (None, None) => break,
            (Some(x), None) | (None, Some(x)) => x.step,
            (Some(x), Some(y)) => x.step.min(y.step),
        };
        // A step that goes backwards plays at the current position.
        let step = prev.map_or(next, |p| next.max(p));
        if let Some(p) = prev {
            if step > p {
                pos += (step - p).min(opts.max_gap_steps.max(1));
            }
        }
        if prev != Some(step) {
            report.steps += 1;
        }
        prev = Some(step);
        let slot = pos * slots;
        match mode {
            CompareMode::Side => {
                mixer.advance(&mut a.engine, &mut b.engine, frame_at(slot), mode, 0)?;
                a.route_step(step, secs_at(slot), &map, &mut msgs);
                b.route_step(step, secs_at(slot), &map, &mut msgs);
            }
            CompareMode::Alternate => {
                mixer.advance(&mut a.engine, &mut b.engine, frame_at(slot), mode, 1)?;
                a.route_step(step, secs_at(slot), &map, &mut msgs);
                mixer.advance(&mut a.engine, &mut b.engine, frame_at(slot + 1), mode, 0)?;
                b.route_step(step, secs_at(slot + 1), &map, &mut msgs);
            }
        }
    }
    // After A's last slot comes B's (alternating); it is what rings out.
    let heard = if mode == CompareMode::Alternate { 1 } else { 0 };
    if prev.is_some() {
        let end = (pos + 1) * slots;
        mixer.advance(&mut a.engine, &mut b.engine, frame_at(end), mode, heard)?;
        a.router.finish(secs_at(end), &mut msgs);
        apply(&mut a.engine, &map, &mut msgs);
        b.router.finish(secs_at(end), &mut msgs);
        apply(&mut b.engine, &map, &mut msgs);
    }
    let tail = (opts.tail_ms.max(0.0) * 1e-3 * opts.sample_rate as f64).round() as u64;
    let to = mixer.frame + tail;
    mixer.advance(&mut a.engine, &mut b.engine, to, mode, heard)?;
    report.frames = mixer.frame;
    report.events = (a.count, b.count);
    mixer.writer.finalize()?;
    Ok(report)
}

struct Mixer<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    format: WavFormat,
    frame: u64,
    /// A left, A right, B left, B right.
    bufs: [[f32; CHUNK]; 4],
    /// Current gains of A and B (alternating: one fades in while the other fades out).
    gains: [f32; 2],
    fade_step: f32,
}

impl<W: Write + Seek> Mixer<W> {
    /// Renders both engines up to frame `to`. Side by side: A left, B right. Alternating:
    /// `heard` (0 for A, 1 for B) is heard in both channels, the other is faded out.
    fn advance(
        &mut self,
        a: &mut Engine,
        b: &mut Engine,
        to: u64,
        mode: CompareMode,
        heard: usize,
    ) -> Result<(), RenderError> {
        while self.frame < to {
            let n = ((to - self.frame) as usize).min(CHUNK);
            let [al, ar, bl, br] = &mut self.bufs;
            a.render(&mut al[..n], &mut ar[..n]);
            b.render(&mut bl[..n], &mut br[..n]);
            for i in 0..n {
                let (l, r) = match mode {
                    CompareMode::Side => ((al[i] + ar[i]) * MONO, (bl[i] + br[i]) * MONO),
                    CompareMode::Alternate => {
                        for (k, g) in self.gains.iter_mut().enumerate() {
                            let target = if k == heard { 1.0 } else { 0.0 };
                            *g = if *g < target {
                                (*g + self.fade_step).min(target)
                            } else {
                                (*g - self.fade_step).max(target)
                            };
                        }
                        let [ga, gb] = self.gains;
                        (ga * al[i] + gb * bl[i], ga * ar[i] + gb * br[i])
                    }
                };
                match self.format {
                    WavFormat::Int16 => {
                        self.writer.write_sample(to_i16(l))?;
                        self.writer.write_sample(to_i16(r))?;
                    }
                    WavFormat::Float32 => {
                        self.writer.write_sample(l)?;
                        self.writer.write_sample(r)?;
                    }
                }
            }
            self.frame += n as u64;
        }
        Ok(())
    }
}

fn to_i16(x: f32) -> i16 {
    let x = if x.is_nan() { 0.0 } else { x.clamp(-1.0, 1.0) };
    (x * 32767.0).round() as i16
}
