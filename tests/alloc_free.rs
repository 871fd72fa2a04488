//! Routing is allocation-free per event in steady state: a counting global allocator sees no
//! allocation while N events go through the router after a warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sonograd::event::{Event, Layer, Payload};
use sonograd::mapping::parse_str;
use sonograd::message::{expand_osc, OscArg};
use sonograd::route::Router;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MAPPING: &str = r#"
[outputs.synth]
kind = "synth"
[outputs.daw]
kind = "midi"
[outputs.sc]
kind = "osc"
port = 57120

[[route]]
output = "synth"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = [1e-3, 1e3], curve = "log", smoothing = 0.3 }
scale = { root = "C3", name = "major", octaves = 3 }
to = { param = "pitch" }
max_rate_hz = 100
coalesce = "mean"

[[route]]
output = "daw"
per_layer = true
match = { metric = "grad_norm", layer = "fc*" }
transform = { domain = "learned", learn = "percentile", warmup = 16 }
to = { note = "value", velocity = "value" }

[[route]]
output = "synth"
per_layer = true
match = { metric = "grad_norm" }
transform = { domain = "learned", learn = "warmup", warmup = 10, span = 100, curve = "log" }
scale = { root = "C1", name = "pentatonic_major", octaves = 4, layer_spread = 3.6, bend = 30 }
to = { param = "pitch", voice = 4 }

[[route]]
output = "daw"
match = { metric = "loss" }
transform = { domain = "learned", learn = "minmax", warmup = 2 }
to = { cc = 1, 14bit = true }
send_on_change = true

[[route]]
output = "sc"
per_layer = true
match = { metric = "update_ratio" }
to = { address = "/u/{layer}/{step}", args = ["f:value", "i:step", "s:layer", "s:route"] }

[[route]]
output = "synth"
alarm = true
match = { metric = "total_norm", when = "value > 5" }
to = { param = "trigger" }

[[route]]
output = "synth"
match = { metric = "nonfinite" }
to = { param = "trigger" }
"#;

fn events(step: u64) -> Vec<Event> {
    let names = ["fc1", "fc2", "conv3"];
    let mut v = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let x = 0.001 * (1.0 + ((step * 7 + i as u64) % 1000) as f64);
        // Layers without index: the interner names them by first appearance.
        v.push(Event::new(
            step,
            0,
            0.0,
            Payload::GradNorm {
                layer: Layer {
                    name: (*n).into(),
                    index: None,
                },
                value: x,
            },
        ));
        v.push(Event::new(
            step,
            0,
            0.0,
            Payload::UpdateRatio {
                layer: Layer::new(*n, i as u32),
                value: x,
            },
        ));
    }
    v.push(Event::new(
        step,
        0,
        0.0,
        Payload::Loss {
            value: 3.0 / (1.0 + step as f64),
        },
    ));
    v.push(Event::new(
        step,
        0,
        0.0,
        Payload::TotalNorm {
            value: (step % 10) as f64,
        },
    ));
    v.push(Event::new(
        step,
        0,
        0.0,
        Payload::NonFinite {
            layer: Some(Layer::new("fc2", 1)),
            quantity: sonograd::event::Quantity::Grad,
            state: sonograd::event::NonFiniteKind::Nan,
        },
    ));
    v
}

#[test]
fn routing_allocates_nothing_after_warm_up() {
    let mapping = parse_str(MAPPING, "alloc.toml").unwrap();
    let mut router = Router::new(&mapping);
    let stream: Vec<Event> = (0..2000).flat_map(events).collect();
    let mut out = Vec::with_capacity(64);
    let mut addr = String::with_capacity(64);
    let mut args: Vec<OscArg> = Vec::with_capacity(8);
    let (warm, steady) = stream.split_at(200);
    let mut now = 0.0;
    for e in warm {
        now += 0.001;
        router.route(now, e, &mut out);
        router.tick(now, &mut out);
        out.clear();
    }
    let mut sent = 0usize;
    let mut osc = 0usize;
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    for e in steady {
        now += 0.001;
        router.route(now, e, &mut out);
        router.tick(now, &mut out);
        sent += out.len();
        for m in &out {
            if expand_osc(m, &mapping, &mut addr, &mut args) {
                osc += 1;
            }
        }
        out.clear();
    }
    router.finish(now, &mut out);
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = ALLOCS.load(Ordering::SeqCst);
    assert!(
        sent > steady.len() / 2,
        "the stream should produce many messages, got {sent}"
    );
    assert!(osc > 1000, "OSC messages expanded: {osc}");
    assert_eq!(
        allocs,
        0,
        "{allocs} allocations while routing {} events",
        steady.len()
    );
    // The counter does see allocations.
    COUNTING.store(true, Ordering::SeqCst);
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(16));
    COUNTING.store(false, Ordering::SeqCst);
    drop(v);
    assert!(ALLOCS.load(Ordering::SeqCst) > 0);
}
