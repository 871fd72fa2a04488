//! `write_report` keeps memory bounded: the peak heap does not grow with the recording's length.

#[path = "it/common/mod.rs"]
mod common;

#[path = "alloc/peak_memory.rs"]
mod peak_memory;

use std::sync::atomic::Ordering;
use std::time::Instant;

use common::write_report_recording;
use peak_memory::{LIVE, PEAK};
use sonograd::report::write_report;
use sonograd::synth::render::RenderOptions;

fn peak_growth(steps: u64, dir: &std::path::Path) -> usize {
    let rec = dir.join(format!("r{steps}.jsonl"));
    write_report_recording(&rec, steps, Some(steps * 3 / 4));
    let mapping = sonograd::mapping::check(format!(
        "{}/config/default.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let opts = RenderOptions {
        step_ms: 5.0,
        sample_rate: 8000,
        ..RenderOptions::default()
    };
    let out = dir.join(format!("out{steps}"));
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = Instant::now();
    let summary = write_report(&rec, &mapping, &opts, &out).unwrap();
    let took = start.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert_eq!(summary.steps, (0, steps - 1));
    println!(
        "{steps} steps ({} events, {:.0} s of audio): peak heap growth {} kB, {took:.2?}",
        summary.events,
        summary.seconds,
        peak / 1024
    );
    peak
}

#[test]
fn peak_memory_is_flat_in_recording_length() {
    let dir = tempfile::tempdir().unwrap();
    peak_growth(20, dir.path()); // one-time initialisation (font, FFT plans) out of the way
    let short = peak_growth(1_000, dir.path());
    let long = peak_growth(20_000, dir.path());
    assert!(
        long < short + (1 << 20),
        "1000 steps: {short} B, 20000 steps: {long} B"
    );
    assert!(long < 32 << 20, "{long} B");
}
