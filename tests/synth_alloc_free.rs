//! The audio callback body never allocates or frees, whatever controls arrive.

mod rt_alloc;

use sonograd::mapping::patches::default_patch_name;
use sonograd::mapping::schema::SynthParam;
use sonograd::synth::control::{control_channel, nanos_since, Control, VoiceMap};
use sonograd::synth::engine::Engine;
use sonograd::synth::live::AudioCallback;
use sonograd::synth::patch::Patch;

#[global_allocator]
static GLOBAL: rt_alloc::Counting = rt_alloc::Counting;

/// The harness itself notices an allocation in a forbidden section.
#[test]
fn harness_detects_allocation() {
    let before = rt_alloc::thread_violations();
    rt_alloc::forbid(true);
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    rt_alloc::forbid(false);
    drop(v);
    assert!(rt_alloc::thread_violations() > before);
}

#[test]
fn callback_does_not_allocate() {
    let map = VoiceMap::single(16);
    let patches: Vec<Patch> = (0..map.total)
        .map(|v| Patch::builtin(default_patch_name(v)).unwrap())
        .collect();
    let engine = Engine::new(&patches, 48_000.0);
    let (mut tx, rx) = control_channel(1024);
    let mut cb = AudioCallback::new(engine, rx, 2, 48_000);
    let origin = cb.origin();
    let mut buf = vec![0.0f32; 2 * 256];
    let params = [
        SynthParam::Pitch,
        SynthParam::Amp,
        SynthParam::Cutoff,
        SynthParam::Pan,
        SynthParam::Trigger,
    ];
    let values = [440.0, 0.5, f32::NAN, f32::INFINITY, -3.0, 1e30, 0.0, 1.0];
    let mut loudest = 0f32;
    let before = rt_alloc::thread_violations();
    for round in 0..300u32 {
        for k in 0..20u32 {
            let c = Control {
                voice: (round * 7 + k) % 20, // includes voices that do not exist
                param: params[(k % 5) as usize],
                value: values[((round + k) % 8) as usize],
                pan: if k % 3 == 0 { f32::NAN } else { -0.5 },
                sent_ns: nanos_since(origin),
            };
            let _ = tx.push(c);
        }
        rt_alloc::forbid(true);
        cb.run(&mut buf);
        rt_alloc::forbid(false);
        loudest = buf.iter().fold(loudest, |a, x| a.max(x.abs()));
        assert!(buf.iter().all(|x| x.is_finite()));
    }
    assert_eq!(
        rt_alloc::thread_violations() - before,
        0,
        "allocations in the audio callback"
    );
    assert!(loudest > 0.01, "the callback produced no sound ({loudest})");
    assert!(cb.latency().count() >= 6000);
}
