//! One synth voice: block oscillators (our vectorised sine, PolyBLEP sawtooth and square,
//! PolyBLAMP triangle and FM in [`super::oscillator`], fundsp noise) and a block state-variable
//! low-pass (`svf`), driven by a sample-accurate envelope, glide and pan of our own.
//!
//! Glide and sweep are exponential approaches, so over a block their frequencies and the
//! phase they add up to have a closed form ([`Geometric`]): the oscillators get every
//! sample's phase without a running sum (a serial chain the compiler cannot vectorise).
//!
//! A voice is processed in blocks of at most [`BLOCK`] frames and adds its output to a
//! stereo mix, using the engine's shared [`Scratch`] buffers. It never allocates after
//! [`Voice::new`]. Control values are sanitised before they reach the DSP, and a block that
//! still produces a non-finite sample resets the voice (see [`Voice::process`]).

use fundsp::prelude::{noise, AudioNode, BufferArray, Noise, U1};
use fundsp::MAX_BUFFER_SIZE;

use super::oscillator::{
    FmOsc, Geometric, Path, SawOsc, SineOsc, SquareOsc, TriangleOsc, BLOCK, RAMP,
};
use super::svf::LowpassSvf;

use super::patch::{Gate, Patch, Wave};

/// The oscillator of a voice.
#[derive(Clone)]
enum Osc {
    Sine(SineOsc),
    Saw(SawOsc),
    Square(SquareOsc),
    Triangle(TriangleOsc),
    Fm(FmOsc),
}

/// Envelope stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Silent; the voice is skipped.
    Idle,
    /// Rising linearly to 1.
    Attack,
    /// Falling towards the sustain level.
    Decay,
    /// Holding the sustain level.
    Sustain,
    /// Falling to silence.
    Release,
}

/// Exponential smoothing coefficient for a time constant of `ms / 5` (so `ms` reaches ~99 %).
fn coef(ms: f32, sample_rate: f32) -> f32 {
    if ms <= 0.0 {
        0.0
    } else {
        (-5.0 / (ms * 0.001 * sample_rate)).exp()
    }
}

/// One voice. See the module docs.
#[derive(Clone)]
pub struct Voice {
    patch: Patch,
    sample_rate: f32,
    osc: Osc,
    noise: Noise,
    filter: Option<LowpassSvf>,
    // control targets and smoothed values
    pitch: f32,
    freq: f32,
    cutoff_target: f32,
    cutoff: f32,
    applied_cutoff: f32,
    amp: f32,
    velocity: f32,
    pan_target: f32,
    pan: f32,
    /// `pan_gains(gains_pan)`, cached: pan changes rarely, cos/sin every block cost.
    gains: (f32, f32),
    gains_pan: f32,
    sweep: f32,
    // coefficients
    glide_k: f32,
    sweep_k: f32,
    /// Powers and sums of `glide_k` and `sweep_k` over a block (when they are above 0).
    glide_g: Option<Box<Geometric>>,
    sweep_g: Option<Box<Geometric>>,
    attack_step: f32,
    /// Powers of the decay and release coefficients over a block.
    decay_g: Box<Geometric>,
    release_g: Box<Geometric>,
    hold_frames: u64,
    since_msg: u64,
    resets: u64,
    // envelope
    stage: Stage,
    level: f32,
}

/// Work buffers for [`Voice::process`], shared by all the voices of an engine (they are
/// processed one after another), so that only one set sits in the cache.
#[repr(C, align(32))]
pub struct Scratch {
    freq: [f32; BLOCK],
    /// The oscillator's [`Path`]: phase offsets from the block's start and increments.
    off: [f32; BLOCK],
    inc: [f32; BLOCK],
    modu: [f32; BLOCK],
    osc: [f32; BLOCK],
    aux: [f32; BLOCK],
    /// fundsp's nodes take at most [`MAX_BUFFER_SIZE`] frames at a time, in its own buffers.
    node_in: BufferArray<U1>,
    node_out: BufferArray<U1>,
}

impl Scratch {
    /// Zeroed buffers, on the heap (they are a few kilobytes).
    pub fn new() -> Box<Scratch> {
        Box::new(Scratch {
            freq: [0.0; BLOCK],
            off: [0.0; BLOCK],
            inc: [0.0; BLOCK],
            modu: [0.0; BLOCK],
            osc: [0.0; BLOCK],
            aux: [0.0; BLOCK],
            node_in: BufferArray::new(),
            node_out: BufferArray::new(),
        })
    }

    /// Runs a fundsp node over `input[..n]` into `output[..n]`, [`MAX_BUFFER_SIZE`] frames
    /// at a time.
    fn run_node(
        node_in: &mut BufferArray<U1>,
        node_out: &mut BufferArray<U1>,
        node: &mut impl AudioNode,
        input: &[f32],
        output: &mut [f32],
    ) {
        for (i, o) in input
            .chunks(MAX_BUFFER_SIZE)
            .zip(output.chunks_mut(MAX_BUFFER_SIZE))
        {
            bytemuck_f32(node_in.channel_mut(0))[..i.len()].copy_from_slice(i);
            node.process(i.len(), &node_in.buffer_ref(), &mut node_out.buffer_mut());
            o.copy_from_slice(&bytemuck_f32(node_out.channel_mut(0))[..o.len()]);
        }
    }
}

impl Voice {
    /// A silent voice playing `patch` at `sample_rate` Hz; `seed` decorrelates its noise.
    pub fn new(patch: &Patch, sample_rate: f32, seed: u64) -> Voice {
        let sr = sample_rate as f64;
        let osc = match patch.wave {
            Wave::Sine => Osc::Sine(SineOsc::new(sr)),
            Wave::Saw => Osc::Saw(SawOsc::new(sr)),
            Wave::Square => Osc::Square(SquareOsc::new(sr)),
            Wave::Triangle => Osc::Triangle(TriangleOsc::new(sr)),
            Wave::Fm { ratio, index } => Osc::Fm(FmOsc::new(sr, ratio, index)),
        };
        let glide_k = coef(patch.glide_ms, sample_rate);
        let sweep_k = patch.sweep.map_or(0.0, |s| coef(s.ms, sample_rate));
        let table = |k: f32| (k > 0.0).then(|| Geometric::new(k));
        let mut noise = noise().0;
        noise.set_hash(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
        let q = patch.filter.map_or(0.707, |f| f.q());
        let filter = patch
            .filter
            .map(|f| LowpassSvf::new(sample_rate, f.cutoff_hz, q));
        let env = patch.envelope;
        let cutoff = patch.filter.map_or(1000.0, |f| f.cutoff_hz);
        Voice {
            patch: patch.clone(),
            sample_rate,
            osc,
            noise,
            filter,
            pitch: patch.pitch_hz,
            freq: patch.pitch_hz,
            cutoff_target: cutoff,
            cutoff,
            applied_cutoff: cutoff,
            amp: 1.0,
            velocity: 1.0,
            pan_target: patch.pan,
            pan: patch.pan,
            gains: pan_gains(patch.pan),
            gains_pan: patch.pan,
            sweep: 1.0,
            glide_k,
            sweep_k,
            glide_g: table(glide_k),
            sweep_g: table(sweep_k),
            attack_step: if env.attack_ms <= 0.0 {
                1.0
            } else {
                1.0 / (env.attack_ms * 0.001 * sample_rate)
            },
            decay_g: Geometric::new(coef(env.decay_ms, sample_rate)),
            release_g: Geometric::new(coef(env.release_ms, sample_rate)),
            hold_frames: (patch.hold_ms as f64 * 0.001 * sr) as u64,
            since_msg: 0,
            resets: 0,
            stage: Stage::Idle,
            level: 0.0,
        }
    }

    /// The patch it plays.
    pub fn patch(&self) -> &Patch {
        &self.patch
    }

    /// Current envelope stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// How many times a non-finite block reset the voice.
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Current pitch target in Hz.
    pub fn pitch(&self) -> f32 {
        self.pitch
    }

    fn nyquist_guard(&self) -> f32 {
        self.sample_rate * 0.45
    }

    /// Opens the gate if the patch holds on messages, and re-arms the hold timer.
    fn touch(&mut self) {
        self.since_msg = 0;
        if self.patch.gate == Gate::Hold && matches!(self.stage, Stage::Idle | Stage::Release) {
            self.stage = Stage::Attack;
        }
    }

    /// Sets the pitch (Hz); strikes a `gate = "pitch"` voice. Non-finite values are ignored.
    pub fn set_pitch(&mut self, hz: f32) {
        if !hz.is_finite() || hz <= 0.0 {
            return;
        }
        self.pitch = hz.clamp(1.0, self.nyquist_guard());
        if self.stage == Stage::Idle || self.glide_k == 0.0 {
            self.freq = self.pitch;
        }
        match self.patch.gate {
            Gate::Pitch => self.strike(1.0),
            _ => self.touch(),
        }
    }

    /// Sets the amplitude 0..1.
    pub fn set_amp(&mut self, amp: f32) {
        if amp.is_finite() {
            self.amp = amp.clamp(0.0, 1.0);
            self.touch();
        }
    }

    /// Sets the filter cutoff (Hz); glides like the pitch.
    pub fn set_cutoff(&mut self, hz: f32) {
        if hz.is_finite() {
            self.cutoff_target = hz.clamp(20.0, self.nyquist_guard());
            if self.stage == Stage::Idle {
                self.cutoff = self.cutoff_target;
            }
            self.touch();
        }
    }

    /// Sets the stereo position −1..1 (smoothed over one block).
    pub fn set_pan(&mut self, pan: f32) {
        if pan.is_finite() {
            self.pan_target = pan.clamp(-1.0, 1.0);
            if self.stage == Stage::Idle {
                self.pan = self.pan_target;
            }
        }
    }

    /// Strikes the envelope at `velocity` 0..1 (from the current level: no click).
    pub fn strike(&mut self, velocity: f32) {
        if !velocity.is_finite() {
            return;
        }
        self.velocity = velocity.clamp(0.0, 1.0);
        self.since_msg = 0;
        if self.stage == Stage::Idle {
            self.freq = self.pitch;
        }
        self.stage = Stage::Attack;
        if let Some(s) = self.patch.sweep {
            self.sweep = s.ratio;
        }
    }

    /// Silences the voice at once and clears the DSP state.
    pub fn kill(&mut self) {
        self.stage = Stage::Idle;
        self.level = 0.0;
        self.sweep = 1.0;
        match &mut self.osc {
            Osc::Sine(s) => s.reset(),
            Osc::Saw(s) => s.reset(),
            Osc::Square(s) => s.reset(),
            Osc::Triangle(t) => t.reset(),
            Osc::Fm(f) => f.reset(),
        }
        if let Some(f) = &mut self.filter {
            f.reset();
        }
        self.freq = self.pitch;
        self.cutoff = self.cutoff_target;
        self.applied_cutoff = f32::NAN;
    }

    /// True when the voice is silent and [`process`](Self::process) would do nothing.
    #[inline(always)]
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// Renders `n` (≤ [`BLOCK`]) frames and adds them to `left` and `right`. Returns false,
    /// touching nothing, when the voice is silent. A block with a non-finite sample is dropped
    /// and the voice reset (returns false): a bad state can never reach the mix.
    ///
    /// Inlined into the engine's voice loop, which is compiled twice (with and without AVX).
    #[inline(always)]
    pub fn process(
        &mut self,
        n: usize,
        scratch: &mut Scratch,
        left: &mut [f32],
        right: &mut [f32],
    ) -> bool {
        let n = n.min(BLOCK);
        if self.patch.gate == Gate::Hold && self.hold_frames > 0 {
            self.since_msg += n as u64;
            if self.since_msg > self.hold_frames
                && matches!(self.stage, Stage::Attack | Stage::Decay | Stage::Sustain)
            {
                self.stage = Stage::Release;
            }
        }
        if self.stage == Stage::Idle {
            return false;
        }
        let Scratch {
            freq: freq_buf,
            off,
            inc,
            modu,
            osc: osc_buf,
            aux,
            node_in,
            node_out,
        } = scratch;
        let path = self.path(n, freq_buf, off, inc);
        // The common case, a plain sine held at a steady pitch, level and pan, in one pass.
        if let (Path::Constant { hz }, Osc::Sine(osc), None, Stage::Sustain, true) = (
            path,
            &mut self.osc,
            &self.filter,
            self.stage,
            self.patch.noise <= 0.0 && self.pan == self.pan_target && self.gains_pan == self.pan,
        ) {
            let g = self.level * self.patch.gain * self.amp * self.velocity;
            let gains = (g * self.gains.0, g * self.gains.1);
            // Finite gains and frequency give finite samples (the sine is a bounded
            // polynomial), so this path needs no per-sample check.
            if gains.0.is_finite() && gains.1.is_finite() {
                osc.add_constant(hz, gains, &mut left[..n], &mut right[..n]);
                return true;
            }
        }
        let ob = &mut osc_buf[..n];
        // Oscillator.
        match &mut self.osc {
            Osc::Sine(s) => s.render(&path, ob),
            Osc::Saw(s) => s.render(&path, ob),
            Osc::Square(s) => s.render(&path, ob),
            Osc::Triangle(t) => t.render(&path, ob),
            Osc::Fm(f) => f.render(&path, ob),
        }
        // Noise layer.
        if self.patch.noise > 0.0 {
            let ab = &mut aux[..n];
            Scratch::run_node(node_in, node_out, &mut self.noise, &freq_buf[..n], ab);
            let level = self.patch.noise;
            for (o, a) in ob.iter_mut().zip(ab.iter()) {
                *o = *o * (1.0 - level) + a * level;
            }
        }
        // Filter: cutoff glides per block.
        let sig: &mut [f32] = match &mut self.filter {
            Some(f) => {
                if self.cutoff != self.cutoff_target {
                    let k = self.glide_k.powi(n as i32);
                    self.cutoff = self.cutoff_target + (self.cutoff - self.cutoff_target) * k;
                }
                if (self.cutoff - self.applied_cutoff).abs() > 0.001 * self.cutoff
                    || !self.applied_cutoff.is_finite()
                {
                    f.set_cutoff(self.cutoff);
                    self.applied_cutoff = self.cutoff;
                }
                let ab = &mut aux[..n];
                f.process(ob, ab);
                ab
            }
            None => ob,
        };
        // Envelope and gain; `finite` checks every sample (a branch-free AND that vectorises).
        let gain = self.patch.gain * self.amp * self.velocity;
        let mut finite = true;
        if self.stage == Stage::Sustain {
            let g = self.level * gain;
            for x in sig.iter_mut() {
                *x *= g;
                finite &= x.abs() < f32::INFINITY;
            }
        } else {
            let eb = &mut modu[..n];
            self.envelope(eb);
            for (x, e) in sig.iter_mut().zip(eb.iter()) {
                *x *= e * gain;
                finite &= x.abs() < f32::INFINITY;
            }
        }
        if !finite {
            // Drop the block and start the voice afresh: nothing reaches the mix.
            self.resets += 1;
            self.kill();
            return false;
        }
        // Pan, smoothed over the block when it moves.
        let pan0 = self.pan;
        self.pan += (self.pan_target - self.pan).clamp(-0.2, 0.2);
        if pan0 != self.gains_pan {
            self.gains = pan_gains(pan0);
            self.gains_pan = pan0;
        }
        let (l0, r0) = self.gains;
        let (left, right) = (&mut left[..n], &mut right[..n]);
        if pan0 == self.pan {
            for ((l, r), x) in left.iter_mut().zip(right.iter_mut()).zip(sig.iter()) {
                *l += x * l0;
                *r += x * r0;
            }
        } else {
            let (l1, r1) = pan_gains(self.pan);
            (self.gains, self.gains_pan) = ((l1, r1), self.pan);
            let inv = 1.0 / n as f32;
            let ramp = &RAMP[..n];
            for (((l, r), x), i) in left
                .iter_mut()
                .zip(right.iter_mut())
                .zip(sig.iter())
                .zip(ramp)
            {
                let t = i * inv;
                *l += x * (l0 + (l1 - l0) * t);
                *r += x * (r0 + (r1 - r0) * t);
            }
        }
        if self.stage == Stage::Idle {
            self.sweep = 1.0;
        }
        true
    }

    /// The oscillator's path over the next `n` frames, advancing glide and sweep: constant once
    /// both have settled; while one of them moves, in closed form from its [`Geometric`]
    /// tables (into `off` and `inc`); the rare rest (both at once, or a sweep beyond the
    /// Nyquist guard) sample by sample through `freq`.
    #[inline(always)]
    fn path<'a>(
        &mut self,
        n: usize,
        freq: &mut [f32; BLOCK],
        off: &'a mut [f32; BLOCK],
        inc: &'a mut [f32; BLOCK],
    ) -> Path<'a> {
        let top = self.nyquist_guard();
        let pitch = self.pitch;
        if (self.freq - pitch).abs() <= 1e-5 * pitch {
            self.freq = pitch;
        }
        if (self.sweep - 1.0).abs() <= 1e-5 {
            self.sweep = 1.0;
        }
        let (a, b) = (self.freq - pitch, self.sweep - 1.0);
        if a == 0.0 && b == 0.0 {
            return Path::Constant { hz: pitch.min(top) };
        }
        let dt = 1.0 / self.sample_rate;
        // Frequency `pitch + x·pow[i]` at sample i: one of glide (x = a) or sweep (x = pitch·b).
        let closed = match (a == 0.0, b == 0.0, &self.glide_g, &self.sweep_g) {
            (false, true, Some(g), _) => Some((a, g)),
            (true, false, _, Some(g)) => Some((pitch * b, g)),
            _ => None,
        };
        if let Some((x, g)) = closed {
            if self.freq.max(pitch) * self.sweep.max(1.0) <= top {
                let (pd, xd) = (pitch * dt, x * dt);
                for (((o, k), (p, s)), i) in off[..n]
                    .iter_mut()
                    .zip(inc[..n].iter_mut())
                    .zip(g.pow.iter().zip(&g.sum))
                    .zip(&RAMP)
                {
                    *k = pd + xd * p;
                    *o = pd * i + xd * s;
                }
                let adv = (pitch as f64 * n as f64 + x as f64 * g.sum[n] as f64)
                    / self.sample_rate as f64;
                let last = g.pow[n.max(1) - 1];
                if a != 0.0 {
                    self.freq = pitch + a * last;
                } else {
                    self.sweep = 1.0 + b * last;
                }
                return Path::Varying {
                    off: &off[..n],
                    inc: &inc[..n],
                    adv,
                };
            }
        }
        let (gk, sk) = (self.glide_k, self.sweep_k);
        let (mut f, mut sweep) = (self.freq, self.sweep);
        for x in freq[..n].iter_mut() {
            f = pitch + (f - pitch) * gk;
            sweep = 1.0 + (sweep - 1.0) * sk;
            *x = (f * sweep).min(top);
        }
        self.freq = f;
        self.sweep = sweep;
        let adv = Path::offsets(
            &freq[..n],
            self.sample_rate as f64,
            &mut off[..n],
            &mut inc[..n],
        );
        Path::Varying {
            off: &off[..n],
            inc: &inc[..n],
            adv,
        }
    }

    /// Fills `eb` with envelope values, advancing the envelope. Each stage has a closed form
    /// (a linear attack, exponential decay and release: [`Geometric`] powers), so the loops
    /// vectorise: an attack that reaches the top within the block is followed by the decay,
    /// and a decay or release that settles holds its end level (sustain, or silence) for the
    /// rest of the block.
    #[inline(always)]
    fn envelope(&mut self, eb: &mut [f32]) {
        let env = self.patch.envelope;
        let n = eb.len();
        let mut from = 0;
        if self.stage == Stage::Attack {
            let (l0, step) = (self.level, self.attack_step);
            for (x, i) in eb.iter_mut().zip(&RAMP) {
                let v = l0 + step * (i + 1.0);
                *x = if v < 1.0 { v } else { 1.0 };
            }
            // Rising: the samples below the top come first.
            let below = eb.iter().fold(0usize, |c, v| c + (*v < 1.0) as usize);
            if below == n {
                self.level = eb.last().copied().unwrap_or(l0);
                return;
            }
            from = below + 1;
            self.level = 1.0;
            self.stage = Stage::Decay;
        }
        let rest = &mut eb[from..];
        let Some(last) = rest.len().checked_sub(1) else {
            return;
        };
        match self.stage {
            Stage::Decay => {
                let (sus, d) = (env.sustain, self.level - env.sustain);
                for (x, p) in rest.iter_mut().zip(&self.decay_g.pow) {
                    let e = d * p;
                    *x = if e < 1e-4 { sus } else { sus + e };
                }
                let e = d * self.decay_g.pow[last];
                if e < 1e-4 {
                    self.level = sus;
                    self.stage = if sus > 0.0 {
                        Stage::Sustain
                    } else {
                        Stage::Idle
                    };
                } else {
                    self.level = sus + e;
                }
            }
            Stage::Release => {
                let l0 = self.level;
                for (x, p) in rest.iter_mut().zip(&self.release_g.pow) {
                    let v = l0 * p;
                    *x = if v < 1e-4 { 0.0 } else { v };
                }
                let v = l0 * self.release_g.pow[last];
                if v < 1e-4 {
                    self.level = 0.0;
                    self.stage = Stage::Idle;
                } else {
                    self.level = v;
                }
            }
            Stage::Sustain => rest.fill(self.level),
            Stage::Attack | Stage::Idle => {
                self.level = 0.0;
                rest.fill(0.0);
            }
        }
    }
}

/// Equal-power pan gains for −1..1.
fn pan_gains(pan: f32) -> (f32, f32) {
    let a = (pan.clamp(-1.0, 1.0) + 1.0) * std::f32::consts::FRAC_PI_4;
    (a.cos(), a.sin())
}

/// The samples of a SIMD channel as plain `f32`s.
fn bytemuck_f32(ch: &mut [fundsp::F32x]) -> &mut [f32] {
    // SAFETY: `F32x` is `wide::f32x8`, a `#[repr(C, align(32))]` wrapper of `[f32; 8]`
    // without padding, so a slice of them is a slice of 8× as many f32s.
    unsafe { std::slice::from_raw_parts_mut(ch.as_mut_ptr() as *mut f32, ch.len() * 8) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed-form glide and sweep give the phases the sample-by-sample recurrence gives.
    #[test]
    fn closed_form_paths_match_the_recurrence() {
        for name in ["tone-triangle", "drone", "explosion", "alarm"] {
            let patch = Patch::builtin(name).unwrap();
            let mut a = Voice::new(&patch, 48_000.0, 1);
            a.set_pitch(110.0);
            a.strike(1.0);
            a.set_pitch(392.0);
            let mut b = a.clone();
            // `b` has no tables: it always takes the recurrence.
            (b.glide_g, b.sweep_g) = (None, None);
            let mut s = Scratch::new();
            let (mut fa, mut oa, mut ia) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
            let (mut fb, mut ob, mut ib) = ([0.0; BLOCK], [0.0; BLOCK], [0.0; BLOCK]);
            let mut varying = 0;
            for (k, n) in [256, 100, 7, 256, 256, 31]
                .iter()
                .cycle()
                .take(60)
                .enumerate()
            {
                let pa = a.path(*n, &mut fa, &mut oa, &mut ia);
                let pb = b.path(*n, &mut fb, &mut ob, &mut ib);
                match (pa, pb) {
                    (Path::Constant { hz: x }, Path::Constant { hz: y }) => assert_eq!(x, y),
                    (
                        Path::Varying { off, inc, adv },
                        Path::Varying {
                            off: o2,
                            inc: i2,
                            adv: a2,
                        },
                    ) => {
                        varying += 1;
                        assert!(
                            (adv - a2).abs() < 5e-5 * a2,
                            "{name} block {k}: {adv} vs {a2}"
                        );
                        for i in 0..*n {
                            assert!((off[i] - o2[i]).abs() < 1e-4, "{name} {k} {i}");
                            assert!((inc[i] - i2[i]).abs() < 5e-5 * i2[i], "{name} {k} {i}");
                        }
                    }
                    // Where the recurrence stalls (below), the closed form has settled.
                    (Path::Constant { hz }, Path::Varying { inc, .. }) => {
                        let want = hz / 48_000.0;
                        assert!(
                            inc.iter().all(|i| (i - want).abs() < 5e-5 * want),
                            "{name} {k}"
                        );
                    }
                    (x, y) => panic!("{name} block {k}: {x:?} vs {y:?}"),
                }
                // (The recurrence in f32 stalls a sweep near 1: a step below half an ulp of 1
                // rounds away. The closed form does not, so the two part by up to ~3e-5.)
                assert!(
                    (a.freq - b.freq).abs() < 1e-5 * b.freq && (a.sweep - b.sweep).abs() < 5e-5,
                    "{name} {k}: {} {} {} {}",
                    a.freq,
                    b.freq,
                    a.sweep,
                    b.sweep
                );
            }
            assert!(varying > 0, "{name} never glided");
            let _ = &mut s;
        }
    }

    /// The envelope, sample by sample, as it was computed before its closed form.
    fn reference_envelope(v: &Voice, stage: &mut Stage, level: &mut f32, out: &mut [f32]) {
        let env = v.patch.envelope;
        let decay_k = v.decay_g.pow[0];
        let release_k = v.release_g.pow[0];
        for x in out.iter_mut() {
            match *stage {
                Stage::Attack => {
                    *level += v.attack_step;
                    if *level >= 1.0 {
                        *level = 1.0;
                        *stage = Stage::Decay;
                    }
                }
                Stage::Decay => {
                    *level = env.sustain + (*level - env.sustain) * decay_k;
                    if *level - env.sustain < 1e-4 {
                        *level = env.sustain;
                        *stage = if env.sustain > 0.0 {
                            Stage::Sustain
                        } else {
                            Stage::Idle
                        };
                    }
                }
                Stage::Sustain => {}
                Stage::Release => {
                    *level *= release_k;
                    if *level < 1e-4 {
                        *level = 0.0;
                        *stage = Stage::Idle;
                    }
                }
                Stage::Idle => *level = 0.0,
            }
            *x = *level;
        }
    }

    #[test]
    fn closed_form_envelope_matches_the_recurrence() {
        for name in ["pluck", "explosion", "alarm", "tone-square", "drone"] {
            let patch = Patch::builtin(name).unwrap();
            let mut v = Voice::new(&patch, 48_000.0, 3);
            let mut stages = std::collections::HashSet::new();
            for (k, n) in [256, 13, 100, 256, 1, 64]
                .iter()
                .cycle()
                .take(400)
                .enumerate()
            {
                if k % 50 == 0 {
                    v.strike(1.0);
                }
                if k % 50 == 30 && v.stage != Stage::Idle {
                    v.stage = Stage::Release;
                }
                if v.stage == Stage::Idle {
                    continue;
                }
                // From the same state, block by block.
                let (mut stage, mut level) = (v.stage, v.level);
                let attack = stage == Stage::Attack;
                let (mut a, mut b) = ([0.0f32; BLOCK], [0.0f32; BLOCK]);
                v.envelope(&mut a[..*n]);
                reference_envelope(&v, &mut stage, &mut level, &mut b[..*n]);
                // The top of an attack may be reached a sample apart (rounding of the ramp).
                let tol = if attack { 1e-4 + v.attack_step } else { 1e-4 };
                for i in 0..*n {
                    assert!((a[i] - b[i]).abs() < tol, "{name} block {k} sample {i}");
                }
                if !attack {
                    assert_eq!(v.stage, stage, "{name} block {k}");
                }
                assert!((v.level - level).abs() < tol);
                stages.insert(format!("{stage:?}"));
            }
            assert!(stages.len() >= 2, "{name}: {stages:?}");
        }
    }
}
