//! Where rendered audio goes: a [`FrameSink`] takes an [`OfflineSynth`](super::render::OfflineSynth)'s
//! frames a span at a time; a [`WavEncoder`] turns them into a WAV (16-bit or float).

use std::io::{Seek, Write};

use super::render::{RenderError, WavFormat};

/// A span's stereo frames, one buffer a channel (both the same length).
pub struct Frames {
    /// Left channel.
    pub left: Vec<f32>,
    /// Right channel.
    pub right: Vec<f32>,
}

impl Frames {
    /// `len` frames of silence.
    pub fn new(len: usize) -> Frames {
        Frames {
            left: vec![0.0; len],
            right: vec![0.0; len],
        }
    }
}

/// Takes rendered stereo frames, a span at a time.
pub trait FrameSink {
    /// Takes the first `n` frames of `frames`. It may keep the buffers and leave others of
    /// the same length in their place (a sink on another thread does, so that no frame is
    /// copied).
    fn put(&mut self, frames: &mut Frames, n: usize) -> Result<(), RenderError>;

    /// Everything has been put: finish the output (finalise the WAV).
    fn finish(self) -> Result<(), RenderError>;
}

/// Stereo frames encoded into a WAV written to `W`.
pub struct WavEncoder<W: Write + Seek> {
    writer: hound::WavWriter<W>,
    format: WavFormat,
    pcm: Vec<i16>,
}

impl<W: Write + Seek> WavEncoder<W> {
    /// A stereo WAV of `format` at `sample_rate` into `out` (the header is written now).
    pub fn new(out: W, sample_rate: u32, format: WavFormat) -> Result<Self, RenderError> {
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
        Ok(WavEncoder {
            writer: hound::WavWriter::new(out, spec)?,
            format,
            pcm: Vec::new(),
        })
    }
}

impl<W: Write + Seek> FrameSink for WavEncoder<W> {
    fn put(&mut self, frames: &mut Frames, n: usize) -> Result<(), RenderError> {
        let (l, r) = (&frames.left[..n], &frames.right[..n]);
        match self.format {
            WavFormat::Int16 => {
                // Convert the whole span first (a loop the compiler vectorises).
                if self.pcm.len() < 2 * n {
                    self.pcm.resize(2 * n, 0);
                }
                let pcm = &mut self.pcm[..2 * n];
                interleave_i16(l, r, pcm);
                let mut w = self.writer.get_i16_writer(2 * n as u32);
                for s in pcm.iter() {
                    // SAFETY: exactly 2 * n samples are written into a writer of 2 * n.
                    unsafe { w.write_sample_unchecked(*s) };
                }
                w.flush()?;
            }
            WavFormat::Float32 => {
                for (a, b) in l.iter().zip(r) {
                    self.writer.write_sample(*a)?;
                    self.writer.write_sample(*b)?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), RenderError> {
        self.writer.finalize()?;
        Ok(())
    }
}

/// Interleaves `left` and `right` into `pcm` as 16-bit samples ([`to_i16`]). The loop runs
/// in AVX-512 or AVX2 registers where the CPU has them; every copy performs the same
/// operations, so the bytes are the same on every machine.
fn interleave_i16(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU supports AVX-512F and BW (checked just above).
            return unsafe { interleave_i16_avx512(left, right, pcm) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { interleave_i16_avx2(left, right, pcm) };
        }
    }
    interleave_i16_body(left, right, pcm)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn interleave_i16_avx512(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    interleave_i16_body(left, right, pcm)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_i16_avx2(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    interleave_i16_body(left, right, pcm)
}

#[inline(always)]
fn interleave_i16_body(left: &[f32], right: &[f32], pcm: &mut [i16]) {
    for ((frame, a), b) in pcm.chunks_exact_mut(2).zip(left).zip(right) {
        frame[0] = to_i16(*a);
        frame[1] = to_i16(*b);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_the_pcm_loop_gives_the_same_samples() {
        let mut rng = 0x2545_f491u32;
        let mut left: Vec<f32> = (0..4099)
            .map(|_| {
                rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (rng >> 8) as f32 / (1 << 22) as f32 - 2.0
            })
            .collect();
        left[..6].copy_from_slice(&[f32::NAN, f32::INFINITY, -0.0, 0.5 / 32767.0, 1.0, -1.0]);
        let right: Vec<f32> = left.iter().rev().map(|x| x * 0.75).collect();
        let mut plain = vec![0i16; 2 * left.len()];
        interleave_i16_body(&left, &right, &mut plain);
        // NaN -> -1, +inf -> +1, -0 -> 0, half a step rounds away from zero, then the bounds.
        let lefts: Vec<i16> = plain.iter().step_by(2).take(6).copied().collect();
        assert_eq!(lefts, [-32767, 32767, 0, 1, 32767, -32767]);
        let mut fast = vec![0i16; plain.len()];
        interleave_i16(&left, &right, &mut fast);
        assert_eq!(plain, fast);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let mut avx2 = vec![0i16; plain.len()];
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { interleave_i16_avx2(&left, &right, &mut avx2) };
            assert_eq!(plain, avx2);
        }
    }
}
