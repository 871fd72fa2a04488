//! Audio analysis for the tests: WAV reading, spectra, pitch and band energy.

use std::path::Path;

use rustfft::num_complex::Complex;
use rustfft::FftPlanner;

/// Stereo WAV as (sample rate, left, right) in −1..1 floats; any integer bit depth or float.
pub fn read_wav(path: &Path) -> (u32, Vec<f32>, Vec<f32>) {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let spec = r.spec();
    assert_eq!(spec.channels, 2, "{}: not stereo", path.display());
    let all: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
    };
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (spec.sample_rate, left, right)
}

/// Mono sum.
pub fn mono(l: &[f32], r: &[f32]) -> Vec<f32> {
    l.iter().zip(r).map(|(a, b)| a + b).collect()
}

/// Root mean square (0 for no samples).
pub fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// Hann-windowed magnitude spectrum of `x`, zero-padded to `n` (at least `x.len()`).
pub fn spectrum(x: &[f32], n: usize) -> Vec<f64> {
    let len = x.len();
    let n = n.max(len.next_power_of_two());
    let mut buf: Vec<Complex<f64>> = (0..n)
        .map(|i| {
            if i < len {
                let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / len as f64).cos();
                Complex::new(x[i] as f64 * w, 0.0)
            } else {
                Complex::new(0.0, 0.0)
            }
        })
        .collect();
    FftPlanner::new().plan_fft_forward(n).process(&mut buf);
    buf[..n / 2].iter().map(|c| c.norm()).collect()
}

/// Frequency of the strongest peak of `x` in Hz (zero-padded FFT, parabolic interpolation of
/// the log magnitudes); 0 for silence.
pub fn peak_hz(x: &[f32], sr: u32) -> f64 {
    let s = spectrum(x, 16384);
    let n = s.len() * 2;
    let (k, top) =
        s.iter().enumerate().skip(2).fold(
            (0, 0.0),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        );
    if top <= 0.0 {
        return 0.0;
    }
    let (a, b, c) = (s[k - 1].ln(), s[k].ln(), s[(k + 1).min(s.len() - 1)].ln());
    let d = 0.5 * (a - c) / (a - 2.0 * b + c);
    (k as f64 + if d.is_finite() { d } else { 0.0 }) * sr as f64 / n as f64
}

/// Energy of `x` between `lo` and `hi` Hz.
pub fn band_energy(x: &[f32], sr: u32, lo: f64, hi: f64) -> f64 {
    let s = spectrum(x, 16384);
    let hz = sr as f64 / (s.len() * 2) as f64;
    s.iter()
        .enumerate()
        .filter(|(i, _)| (*i as f64 * hz) >= lo && (*i as f64 * hz) < hi)
        .map(|(_, v)| v * v)
        .sum()
}

/// Samples of step `step`'s window (from `from_ms` to `to_ms` into the step).
pub fn step_window(
    x: &[f32],
    sr: u32,
    step_ms: f64,
    step: u64,
    from_ms: f64,
    to_ms: f64,
) -> &[f32] {
    let at = |ms: f64| ((step as f64 * step_ms + ms) * 1e-3 * sr as f64) as usize;
    &x[at(from_ms).min(x.len())..at(to_ms).min(x.len())]
}
