//! Offline render memory does not grow with the run's length.

#[path = "it/common/mod.rs"]
mod common;

#[path = "alloc/peak_memory.rs"]
mod peak_memory;

use std::sync::atomic::Ordering;

use common::*;
use peak_memory::{Discard, LIVE, PEAK};
use sonograd::pipeline::render::render_events_to;
use sonograd::synth::render::RenderOptions;

fn peak_growth(steps: u64) -> usize {
    let mapping = default_mapping();
    let opts = RenderOptions {
        sample_rate: 8000,
        ..RenderOptions::default()
    };
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let events = (0..steps).flat_map(|s| {
        let mut v = grad_step(s, &[1.0 + (s % 17) as f64, 0.1, 3.0, 0.02]);
        v.push(loss(s, 1.0 / (1 + s) as f64));
        v.into_iter()
    });
    let report = render_events_to(events, &mapping, &opts, Discard::default()).unwrap();
    assert_eq!(report.steps, steps);
    PEAK.load(Ordering::Relaxed) - base
}

#[test]
fn peak_memory_is_flat_in_run_length() {
    peak_growth(10); // one-time initialisation out of the way
                     // The synth thread's queue of gathered calls is bounded but fills only as far as the
                     // thread falls behind, which depends on timing (up to ~80 kB apart between runs under
                     // load). So the margin is 160 kB, and the long run is long enough that keeping even a
                     // u64 per step (38,000 more steps: 304 kB) would fail it.
    let short = peak_growth(2_000);
    let long = peak_growth(40_000);
    println!("peak heap growth: 2,000 steps {short} B, 40,000 steps {long} B");
    assert!(
        long < short + 160 * 1024,
        "2,000 steps: {short} B, 40,000 steps: {long} B"
    );
    assert!(short < 4 << 20, "{short} B");
}
