//! Offline render, checked by analysis of the WAV.

use crate::common;

use common::*;
use proptest::prelude::*;
use sonograd::event::Event;
use sonograd::pipeline::render::render_recording;
use sonograd::synth::render::{RenderOptions, WavFormat};

fn opts_f32() -> RenderOptions {
    RenderOptions {
        format: WavFormat::Float32,
        tail_ms: 300.0,
        ..RenderOptions::default()
    }
}

/// Under config/default.toml, a rising gradient norm gives a rising pitch, step by step: after
/// ten steps at 1.0 (which anchor the layer's domain on 1.0, two decades around it), a rise
/// from 0.5 to 10 climbs from E2 to the top of the layer's four octaves.
#[test]
fn pitch_follows_grad_norm_monotonically() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("rise.wav");
    let (warm, steps) = (10u64, 24u64);
    let events: Vec<Event> =
        (0..warm)
            .flat_map(|s| grad_step(s, &[1.0]))
            .chain((0..steps).flat_map(|s| {
                grad_step(warm + s, &[0.5 * 20f64.powf(s as f64 / (steps - 1) as f64)])
            }))
            .collect();
    let opts = opts_f32();
    render_recording(events, &default_mapping(), &opts, &wav).unwrap();
    let (sr, l, r) = read_wav(&wav);
    let m = mono(&l, &r);
    let pitches: Vec<f64> = (warm..warm + steps)
        .map(|s| peak_hz(step_window(&m, sr, opts.step_ms, s, 20.0, 50.0), sr))
        .collect();
    for w in pitches.windows(2) {
        assert!(w[1] >= w[0] * 0.99, "pitch fell: {pitches:?}");
    }
    // C1 pentatonic major over four octaves (config/default.toml), domain [0.1, 10]: 0.5 is
    // level (log10(0.5) + 1) / 2 = 0.349 -> 6.99 of 20 -> note #7 = 24 + 12 + 4 = MIDI 40
    // (E2, 82.4 Hz, bent 0.6 cents flat); 10 is the top note, C5 = 24 + 48 = MIDI 72 =
    // 523.25 Hz (as tests/shipped.rs derives).
    assert!((pitches[0] - 82.4).abs() < 2.0, "first {pitches:?}");
    assert!(
        (pitches[steps as usize - 1] - 523.25).abs() < 5.0,
        "last {pitches:?}"
    );
    let distinct = pitches.windows(2).filter(|w| w[1] > w[0] * 1.05).count();
    assert!(distinct >= 10, "too few pitch steps: {pitches:?}");
}

/// A non-finite step strikes the alarm: a loud low thump (energy below 100 Hz, under the
/// lowest layer's C3 at its anchor).
#[test]
fn nonfinite_step_has_alarm_signature() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("nan.wav");
    let mut events = Vec::new();
    for s in 0..20u64 {
        events.extend(grad_step(s, &[1.0, 0.5]));
        if s == 10 {
            events.push(nan_event(s));
        }
    }
    let opts = opts_f32();
    render_recording(events, &default_mapping(), &opts, &wav).unwrap();
    let (sr, l, r) = read_wav(&wav);
    let m = mono(&l, &r);
    let low = |step| {
        band_energy(
            step_window(&m, sr, opts.step_ms, step, 0.0, 50.0),
            sr,
            30.0,
            100.0,
        )
    };
    let (before, at) = (low(8), low(10));
    assert!(
        at > 100.0 * before.max(1e-9),
        "low band before {before}, at {at}"
    );
    let peak = peak_hz(step_window(&m, sr, opts.step_ms, 10, 0.0, 150.0), sr);
    assert!(peak < 160.0, "alarm's strongest frequency {peak} Hz");
}

/// A norm over the threshold strikes the explosion warning: a bright band appears.
#[test]
fn explosion_warning_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("boom.wav");
    let mut events = Vec::new();
    for s in 0..12u64 {
        events.push(total_norm(s, if s == 6 { 5000.0 } else { 1.0 }));
    }
    let opts = opts_f32();
    render_recording(events, &default_mapping(), &opts, &wav).unwrap();
    let (sr, l, r) = read_wav(&wav);
    let m = mono(&l, &r);
    let hi = |s| {
        band_energy(
            step_window(&m, sr, opts.step_ms, s, 0.0, 50.0),
            sr,
            300.0,
            4000.0,
        )
    };
    assert!(hi(4) < 1e-9, "silence before, got {}", hi(4));
    assert!(hi(6) > 1.0, "warning energy {}", hi(6));
}

/// The same input gives the same bytes.
#[test]
fn render_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Event> = (0..30u64)
        .flat_map(|s| {
            let mut v = grad_step(s, &[0.01 * (s + 1) as f64, 3.0, 0.2, 40.0]);
            v.push(loss(s, 2.0 / (s + 1) as f64));
            if s % 7 == 3 {
                v.push(nan_event(s));
            }
            v
        })
        .collect();
    let (a, b) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let opts = RenderOptions::default();
    render_recording(events.clone(), &default_mapping(), &opts, &a).unwrap();
    render_recording(events, &default_mapping(), &opts, &b).unwrap();
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(x.len() > 44 + 4 * 48_000, "{} bytes", x.len());
    assert!(x == y, "renders differ");
}

/// Every engine voice at full tilt stays below 0 dBFS.
#[test]
fn loud_chord_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("loud.wav");
    let mut events = Vec::new();
    for s in 0..20u64 {
        events.extend(grad_step(s, &[1e3; 13]));
        events.push(nan_event(s));
        events.push(total_norm(s, 1e6));
        events.push(loss(s, 100.0));
    }
    render_recording(events, &default_mapping(), &opts_f32(), &wav).unwrap();
    let (_, l, r) = read_wav(&wav);
    let peak = l.iter().chain(&r).fold(0f32, |a, x| a.max(x.abs()));
    assert!(peak <= 1.0, "peak {peak}");
    assert!(peak > 0.5, "suspiciously quiet: {peak}");
}

fn fuzz_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-1.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        -1e6f64..1e6,
        1e-9f64..1e9,
    ]
}

fn fuzz_event() -> impl Strategy<Value = Event> {
    (0u64..50, 0u8..5, 0u32..20, fuzz_value()).prop_map(|(step, kind, layer, v)| match kind {
        0 => grad_step(step, &[v]).remove(0),
        1 => loss(step, v),
        2 => total_norm(step, v),
        3 => nan_event(step),
        _ => {
            let mut e = grad_step(step, &[v]).remove(0);
            if let sonograd::event::Payload::GradNorm { layer: l, .. } = &mut e.payload {
                *l = sonograd::event::Layer::new(format!("x{layer}"), layer);
            }
            e
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any recording, however broken, renders finite samples within 0 dBFS.
    #[test]
    fn fuzzed_recordings_render_finite_and_limited(events in proptest::collection::vec(fuzz_event(), 0..80)) {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("fuzz.wav");
        let opts = RenderOptions { sample_rate: 8000, tail_ms: 200.0, ..opts_f32() };
        render_recording(events, &default_mapping(), &opts, &wav).unwrap();
        let (_, l, r) = read_wav(&wav);
        for x in l.iter().chain(&r) {
            prop_assert!(x.is_finite() && x.abs() <= 1.0, "sample {}", x);
        }
    }
}

/// With the pluck patch, every step is a separate decaying note.
#[test]
fn pluck_patch_strikes_every_step() {
    use sonograd::synth::patch::Patch;
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("pluck.wav");
    let mapping = default_mapping();
    let mut patches = mapping.synth_patches();
    patches[0] = Patch::builtin("pluck").unwrap();
    let opts = RenderOptions {
        step_ms: 200.0,
        patches: Some(patches),
        ..opts_f32()
    };
    let events: Vec<Event> = (0..6u64).flat_map(|s| grad_step(s, &[1.0])).collect();
    render_recording(events, &mapping, &opts, &wav).unwrap();
    let (sr, l, r) = read_wav(&wav);
    let m = mono(&l, &r);
    let rms = |x: &[f32]| (x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32).sqrt();
    for s in 1..5 {
        let head = rms(step_window(&m, sr, 200.0, s, 2.0, 30.0));
        let end = rms(step_window(&m, sr, 200.0, s, 170.0, 200.0));
        assert!(
            head > 8.0 * end && head > 0.02,
            "step {s}: head {head}, end {end}"
        );
    }
}

/// The loss drone sounds on its own and its brightness glides (no jump) when the loss drops.
#[test]
fn drone_brightness_glides_with_loss() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("drone.wav");
    let events: Vec<Event> = (0..40u64)
        .map(|s| loss(s, if s < 20 { 10.0 } else { 0.01 }))
        .collect();
    let opts = opts_f32();
    render_recording(events, &default_mapping(), &opts, &wav).unwrap();
    let (sr, l, r) = read_wav(&wav);
    let m = mono(&l, &r);
    let bright = |s| {
        let w = step_window(&m, sr, opts.step_ms, s, 0.0, 50.0);
        band_energy(w, sr, 600.0, 5000.0) / band_energy(w, sr, 20.0, 5000.0).max(1e-12)
    };
    let (open, mid, closed) = (bright(19), bright(21), bright(36));
    let low_peak = peak_hz(step_window(&m, sr, opts.step_ms, 19, 0.0, 50.0), sr);
    assert!(
        low_peak < 120.0,
        "drone fundamental region, got {low_peak} Hz"
    );
    assert!(open > 10.0 * closed, "open {open}, closed {closed}");
    let _ = mid;
    let seq: Vec<f64> = (19..37).map(bright).collect();
    // The router smooths and rate-limits the loss, so the fall starts a few steps later.
    for w in seq[5..].windows(2) {
        assert!(w[1] <= w[0] * 1.05, "brightness rose: {seq:?}");
    }
    let between = seq
        .iter()
        .filter(|b| **b < open * 0.7 && **b > closed * 1.5)
        .count();
    assert!(between >= 3, "no glide, jumped: {seq:?}");
}
