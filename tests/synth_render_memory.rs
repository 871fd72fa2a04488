//! Offline render memory does not grow with the run's length.

#[path = "synth_common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use sonograd::synth::render::{render_events_to, RenderOptions};

struct Tracking;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Tracking = Tracking;

/// A seekable writer that keeps nothing.
#[derive(Default)]
struct Discard {
    pos: u64,
    len: u64,
}

impl Write for Discard {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.pos += b.len() as u64;
        self.len = self.len.max(self.pos);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Discard {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => (self.len as i64 + d) as u64,
            SeekFrom::Current(d) => (self.pos as i64 + d) as u64,
        };
        Ok(self.pos)
    }
}

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
    let short = peak_growth(200);
    let long = peak_growth(4000);
    println!("peak heap growth: 200 steps {short} B, 4000 steps {long} B");
    assert!(
        long < short + 64 * 1024,
        "200 steps: {short} B, 4000 steps: {long} B"
    );
    assert!(short < 4 << 20, "{short} B");
}
