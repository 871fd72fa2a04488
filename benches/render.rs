//! Offline render speed: a 10,000-step, 4-layer recording (500 s of audio at 50 ms a step)
//! with the default mapping and patches, rendered to a discarding writer on one thread.
//!
//! `cargo bench --bench render` prints the real-time factor (best and median of 5 runs) and the peak heap
//! growth for 1,000 and 10,000 steps (flat: the WAV is streamed). Options after `--`:
//! `--rate=HZ`, `--steps=N`, `--runs=N`, `--no-memory`.

#[path = "../tests/alloc/peak_memory.rs"]
mod peak_memory;

use std::sync::atomic::Ordering;
use std::time::Instant;

use peak_memory::{Discard, LIVE, PEAK};

use sonograd::event::{Event, Layer, Payload};
use sonograd::pipeline::render::render_events_to;
use sonograd::synth::render::{RenderOptions, WavFormat};

/// Four layers' gradient norms plus the loss, every step; norms wander over decades.
fn recording(steps: u64) -> impl Iterator<Item = Event> {
    (0..steps).flat_map(|s| {
        let mut v: Vec<Event> = (0..4u32)
            .map(|l| {
                let x = ((s as f64) * 0.013 * (l + 1) as f64).sin() * 3.0 - l as f64 * 0.5;
                Event::new(
                    s,
                    0,
                    s as f64,
                    Payload::GradNorm {
                        layer: Layer::new(format!("fc{l}"), l),
                        value: 10f64.powf(x),
                    },
                )
            })
            .collect();
        v.push(Event::new(
            s,
            0,
            s as f64,
            Payload::Loss {
                value: 2.0 / (1.0 + s as f64 * 0.01),
            },
        ));
        v.into_iter()
    })
}

fn main() {
    let mapping =
        sonograd::mapping::check(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
            .expect("default mapping");
    let args: Vec<String> = std::env::args().collect();
    let rate: u32 = args
        .iter()
        .find_map(|a| a.strip_prefix("--rate=").and_then(|r| r.parse().ok()))
        .unwrap_or(48_000);
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(name).and_then(|r| r.parse::<u64>().ok()))
    };
    // `--steps=N --runs=N` for quick or profiled runs (e.g. under callgrind).
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this in the test profile
    // without it: then a short smoke run only, whose speed is not the benchmark's figure.
    let smoke = !args.iter().any(|a| a == "--bench");
    if smoke {
        println!("smoke run (cargo test); `cargo bench --bench render` gives the figures");
    }
    let steps = arg("--steps=").unwrap_or(if smoke { 500 } else { 10_000 });
    let runs = arg("--runs=").unwrap_or(if smoke { 1 } else { 5 }).max(1);
    for format in [WavFormat::Int16, WavFormat::Float32] {
        let opts = RenderOptions {
            sample_rate: rate,
            format,
            tail_ms: 0.0,
            ..RenderOptions::default()
        };
        let mut times = Vec::with_capacity(runs as usize);
        let mut audio_s = 0.0;
        for _ in 0..runs {
            let t = Instant::now();
            let r = render_events_to(recording(steps), &mapping, &opts, Discard::default())
                .expect("render");
            times.push(t.elapsed().as_secs_f64());
            audio_s = r.seconds(rate);
        }
        times.sort_by(f64::total_cmp);
        let (best, median) = (times[0], times[times.len() / 2]);
        println!(
            "render {steps} steps x 4 layers, {rate} Hz, {format:?}: {audio_s:.0} s of audio in {best:.3} s = {:.0}x real time (best of {runs}; median {:.0}x)",
            audio_s / best,
            audio_s / median
        );
    }
    if args.iter().any(|a| a == "--no-memory") {
        return;
    }
    for steps in [1_000u64, 10_000] {
        let opts = RenderOptions {
            sample_rate: rate,
            ..RenderOptions::default()
        };
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        render_events_to(recording(steps), &mapping, &opts, Discard::default()).expect("render");
        println!(
            "peak heap growth, {steps} steps: {} kB",
            (PEAK.load(Ordering::Relaxed) - base) / 1024
        );
    }
}
