//! Each shipped mapping, fed a short hand-written list of events; every expected value is
//! derived by hand in the comments.

use crate::common;
use common::*;

use sonograd::event::DiagnosisKind;
use sonograd::mapping::schema::{Metric, OutputKind, SynthParam};
use sonograd::message::{expand_osc, Action, OscArg};
use sonograd::route::Router;

fn synth(a: &Action) -> (u32, SynthParam, f64, Option<f64>) {
    match *a {
        Action::Synth {
            voice,
            param,
            value,
            pan,
        } => (voice, param, value, pan),
        other => panic!("expected a synth action, got {other:?}"),
    }
}

#[test]
fn default_mapping() {
    let m = load("default.toml");
    let mut r = Router::new(&m);
    assert!(feed(&mut r, 0.0, &run_start(0, &["fc1", "fc2", "fc3"])).is_empty());

    // grad-pitch: a log domain anchored on each layer's own norms: two decades centred on
    // its first norm until its 10th, then on the median of its first 10. So every layer's
    // first norm sits in the middle (level 0.5), whatever its size. C1 (24) pentatonic major
    // over 4 octaves: 5*4+1 = 21 notes, 0.5*20 = note #10 = 24+24 = 48 (C3) = 130.813 Hz for
    // the first layer; layer i of n plays round(18*i/(n-1)) degrees higher (`layer_spread`
    // 3.6 octaves = 18 degrees). Voice 0 + layer 0; three layers declared, layer 0 is hard
    // left (-1).
    let out = feed(&mut r, 0.0, &grad(1, "fc1", None, 1.0));
    assert_eq!(out.len(), 1);
    assert_eq!(&*m.routes[out[0].route as usize].name, "grad-pitch");
    let (voice, param, hz, pan) = synth(&out[0].action);
    assert_eq!((voice, param, pan), (0, SynthParam::Pitch, Some(-1.0)));
    assert!(close(hz, 130.812_782_65), "{hz}");
    assert_eq!(out[0].layer.as_ref().unwrap().index, 0);

    // fc3's first norm, 1e3, is its middle too: #10 + 18 degrees = #28 = octave 5, degree 3
    // (+7) = 24+60+7 = 91 (G6) = 440 * 2^(22/12) = 1567.982 Hz, voice 2, hard right. The
    // layer index comes from the run's layer list (fc3 = 2).
    let (voice, _, hz, pan) = synth(&feed(&mut r, 0.0, &grad(1, "fc3", None, 1e3))[0].action);
    assert_eq!((voice, pan), (2, Some(1.0)));
    assert!(close(hz, 1_567.981_743_9), "{hz}");

    // fc2's first norm, 1e-3: #10 + 9 degrees = #19 = octave 3, degree 4 (+9) = 24+36+9 = 69
    // (A4) = 440 Hz, voice 1, centre. Three layers six octaves of norm apart sound C3, A4, G6.
    let (voice, _, hz, pan) = synth(&feed(&mut r, 0.0, &grad(1, "fc2", None, 1e-3))[0].action);
    assert_eq!((voice, pan), (1, Some(0.0)));
    assert!(close(hz, 440.0), "{hz}");

    // 20 Hz rate limit: fc1 again 10 ms later is held back; a tick at 60 ms (> 50 ms window)
    // releases it. 10.0 is a decade above fc1's first norm: the top of its domain, level 1 ->
    // note #20 = 48 + 24 = 72 (C5) = 523.251 Hz.
    assert!(feed(&mut r, 0.01, &grad(2, "fc1", None, 10.0)).is_empty());
    let mut out = Vec::new();
    r.tick(0.03, &mut out);
    assert!(out.is_empty(), "window still closed at 30 ms");
    r.tick(0.06, &mut out);
    assert_eq!(out.len(), 1);
    let (voice, _, hz, _) = synth(&out[0].action);
    assert_eq!((voice, out[0].step, out[0].time), (0, 2, 0.06));
    assert!(close(hz, 523.251_130_6), "{hz}");

    // loss-brightness: loss 0.1, log [0.01, 10] -> ln(10)/ln(1000) = 1/3; first value passes
    // the smoother unchanged; cutoff 200 * 20^(1/3) = 542.884 Hz on voice 15.
    let out = feed(&mut r, 0.0, &loss(1, 0.1));
    let (voice, param, hz, pan) = synth(&out[0].action);
    assert_eq!((voice, param, pan), (15, SynthParam::Cutoff, None));
    assert!(close(hz, 542.883_523_3), "{hz}");
    // loss 10 -> level 1, smoothed 0.5*(1/3) + 0.5*1 = 2/3 -> 200 * 20^(2/3) = 1473.613 Hz.
    let (_, _, hz, _) = synth(&feed(&mut r, 0.1, &loss(2, 10.0))[0].action);
    assert!(close(hz, 1_473.612_599), "{hz}");

    // nan-alarm: any NaN strikes voice 14 at full level, flagged as an alarm.
    let out = feed(&mut r, 0.1, &nan_grad(3, "fc2", 1));
    assert_eq!(out.len(), 1);
    assert_eq!(synth(&out[0].action), (14, SynthParam::Trigger, 1.0, None));
    assert!(out[0].alarm && out[0].raw.is_nan());

    // explosion: total norm 50 is below the threshold; 1000 -> log [1, 1e4] = 3/4 -> 0.75.
    assert!(feed(&mut r, 0.2, &total(4, 50.0)).is_empty());
    let out = feed(&mut r, 0.2, &total(5, 1000.0));
    let (voice, param, level, pan) = synth(&out[0].action);
    assert_eq!((voice, param, pan), (13, SynthParam::Trigger, None));
    assert!(close(level, 0.75), "{level}");
    assert!(out[0].alarm);

    // Diagnoses: each kind plays its own two-note chord on its own pair of sine voices
    // (16-31), at full level, so at the top of each route's `range`; no two kinds share a
    // voice or a chord.
    let expected = [
        (DiagnosisKind::Exploding, (16, 1760.0), (17, 2489.02)),
        (DiagnosisKind::Vanishing, (18, 65.41), (19, 98.0)),
        (DiagnosisKind::NonFinite, (20, 440.0), (21, 466.16)),
        (DiagnosisKind::Plateau, (22, 196.0), (23, 392.0)),
        (DiagnosisKind::Oscillation, (24, 330.0), (25, 336.0)),
        (DiagnosisKind::DeadLayer, (26, 110.0), (27, 130.81)),
        (DiagnosisKind::LossSpike, (28, 1046.5), (29, 1318.51)),
        (DiagnosisKind::Stall, (30, 146.83), (31, 207.65)),
    ];
    let mut voices = std::collections::BTreeSet::new();
    for (kind, (v1, hz1), (v2, hz2)) in expected {
        let out = feed(&mut r, 0.3, &diagnosis(6, kind, &["fc1"]));
        assert_eq!(out.len(), 2, "{kind}: {out:?}");
        assert!(out.iter().all(|o| o.alarm && o.metric == Metric::Diagnosis));
        let (a, b) = (synth(&out[0].action), synth(&out[1].action));
        assert_eq!(
            (a.0, a.1, b.0, b.1),
            (v1, SynthParam::Pitch, v2, SynthParam::Pitch)
        );
        assert!(close(a.2, hz1) && close(b.2, hz2), "{kind}: {a:?} {b:?}");
        voices.extend([v1, v2]);
    }
    assert_eq!(voices.len(), 16);
    let OutputKind::Synth {
        voices,
        patches,
        patch_files,
    } = &m.outputs[0].kind
    else {
        panic!("{:?}", m.outputs[0].kind);
    };
    assert_eq!(*voices, 32);
    // The patches it states: a timbre of its own for each of the first three layers, the
    // gliding sine for the fourth and any after it, 13 explosion, 14 alarm, 15 drone, and the
    // plain sine for the diagnosis voices 16-31.
    let names: Vec<&str> = patches.iter().map(|p| &*p.name).collect();
    let mut expected = vec!["tone-sine"; 16];
    expected.extend(["sine"; 16]);
    expected[0] = "tone-triangle";
    expected[1] = "tone-square";
    expected[2] = "tone-fm";
    expected[13] = "explosion";
    expected[14] = "alarm";
    expected[15] = "drone";
    assert_eq!(names, expected);
    assert!(patch_files.is_empty(), "{patch_files:?}");
}

#[test]
fn daw_midi_mapping() {
    let m = load("daw-midi.toml");
    let mut r = Router::new(&m);
    let note = |a: &Action| match *a {
        Action::Note {
            channel,
            note,
            velocity,
            length_ms,
        } => (channel, note, velocity, length_ms),
        other => panic!("expected a note, got {other:?}"),
    };

    // grad-notes: each layer's domain is anchored on its own first norms (two decades around
    // the first until the 10th), so a first norm is level 0.5. A1 (33) minor over 3 octaves:
    // 7*3+1 = 22 notes, 0.5*21 = 10.5 -> note #11 = octave 1, degree 4 (+7) = 52 (E3).
    // Velocity 1 + 126*0.5 = 64. Channel 1 + layer 0 = 1.
    assert_eq!(
        note(&feed(&mut r, 0.0, &grad(1, "fc1", Some(0), 1.0))[0].action),
        (1, 52, 64, 200)
    );
    // fc2 (index 1) 1e3, its first norm: level 0.5; the second of two layers plays
    // `layer_spread` 2 octaves = 14 degrees higher: #25 = octave 3, degree 4 = 33+36+7 = 76,
    // velocity 64, channel 2.
    assert_eq!(
        note(&feed(&mut r, 0.0, &grad(1, "fc2", Some(1), 1e3))[0].action),
        (2, 76, 64, 200)
    );

    // 8 Hz (125 ms window), coalesce max: 0.1 and 0.01 for fc1 inside the window are merged,
    // keeping 0.1: a decade below fc1's first norm, the bottom of its domain: level 0 ->
    // note #0 = 33 (A1), velocity 1.
    assert!(feed(&mut r, 0.05, &grad(2, "fc1", Some(0), 0.1)).is_empty());
    assert!(feed(&mut r, 0.10, &grad(3, "fc1", Some(0), 0.01)).is_empty());
    let mut out = Vec::new();
    r.tick(0.125, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(note(&out[0].action), (1, 33, 1, 200));
    assert_eq!(out[0].raw, 0.1);

    // loss-cc: loss 2 in [0, 4] -> 0.5 -> round(63.5) = 64 on CC 74, channel 16.
    let cc = |out: &[sonograd::message::Message]| match out[0].action {
        Action::Cc {
            channel,
            cc,
            value,
            fine,
        } => (channel, cc, value, fine),
        other => panic!("expected a CC, got {other:?}"),
    };
    assert_eq!(cc(&feed(&mut r, 0.0, &loss(1, 2.0))), (16, 74, 64, false));
    // send_on_change: 2.0 again, and 2.01 (0.5025*127 = 63.8 -> 64), send nothing.
    assert!(feed(&mut r, 0.1, &loss(2, 2.0)).is_empty());
    assert!(feed(&mut r, 0.2, &loss(3, 2.01)).is_empty());
    assert_eq!(cc(&feed(&mut r, 0.3, &loss(4, 4.0))), (16, 74, 127, false));

    // lr-modwheel: lr 1e-3, log [1e-5, 1] -> 2/5 = 0.4 -> 0.4*16383 = 6553.2 -> 6553, 14-bit.
    assert_eq!(cc(&feed(&mut r, 0.0, &lr(1, 1e-3))), (16, 1, 6553, true));

    // total-bend: learned 5th/95th percentiles over 50 values, silent until 50 are seen.
    // Values 1..=50: p5 = sorted[round(0.05*49) = 2] = 3, p95 = sorted[round(0.95*49) = 47] = 48.
    for i in 1..50 {
        assert!(
            feed(&mut r, i as f64 * 0.1, &total(i, i as f64)).is_empty(),
            "warm-up {i}"
        );
    }
    let out = feed(&mut r, 5.0, &total(50, 50.0));
    // 50 -> (50-3)/45 > 1 -> clamped to 1 -> 16383.
    assert_eq!(
        out[0].action,
        Action::PitchBend {
            channel: 16,
            value: 16383
        }
    );
    // 25.5 -> 22.5/45 = 0.5 -> 8191.5 -> 8192 (centre).
    let out = feed(&mut r, 5.1, &total(51, 25.5));
    assert_eq!(
        out[0].action,
        Action::PitchBend {
            channel: 16,
            value: 8192
        }
    );

    // nan-crash: GM crash 49 on channel 10, velocity 127, 500 ms.
    assert_eq!(
        note(&feed(&mut r, 6.0, &inf_loss(60))[0].action),
        (10, 49, 127, 500)
    );
    // explosion-crash on a fresh router (total-bend is still warming up there): note 57.
    let mut fresh = Router::new(&m);
    let out = feed(&mut fresh, 0.0, &total(1, 150.0));
    assert_eq!(out.len(), 1);
    assert_eq!(note(&out[0].action), (10, 57, 120, 500));
    assert!(out[0].alarm);

    // Diagnoses: one GM percussion note each on channel 10, never rate limited.
    for (kind, want) in [
        (DiagnosisKind::Exploding, (10, 52, 120, 400)),
        (DiagnosisKind::Vanishing, (10, 35, 120, 400)),
        (DiagnosisKind::NonFinite, (10, 55, 120, 400)),
        (DiagnosisKind::Plateau, (10, 53, 110, 400)),
        (DiagnosisKind::Oscillation, (10, 54, 110, 400)),
        (DiagnosisKind::DeadLayer, (10, 56, 110, 400)),
        (DiagnosisKind::LossSpike, (10, 39, 120, 400)),
        (DiagnosisKind::Stall, (10, 58, 110, 400)),
    ] {
        let out = feed(&mut fresh, 0.1, &diagnosis(2, kind, &["fc1"]));
        assert_eq!(out.len(), 1, "{kind:?}");
        assert_eq!(note(&out[0].action), want, "{kind:?}");
        assert!(out[0].alarm, "{kind:?}");
    }
}

fn osc(m: &sonograd::mapping::Mapping, msg: &sonograd::message::Message) -> (String, Vec<OscArg>) {
    let mut addr = String::new();
    let mut args = Vec::new();
    assert!(expand_osc(msg, m, &mut addr, &mut args));
    (addr, args)
}

#[test]
fn supercollider_mapping() {
    let m = load("supercollider.toml");
    let mut r = Router::new(&m);

    // grad: fc1's first norm, 1.0, is the middle of its anchored domain: level 0.5; range
    // [0, 1] -> 0.5.
    let out = feed(&mut r, 0.0, &grad(7, "fc1", Some(0), 1.0));
    assert_eq!(
        osc(&m, &out[0]),
        (
            "/sonograd/grad/fc1".into(),
            vec![
                OscArg::Int(0),
                OscArg::Float(0.5),
                OscArg::Float(1.0),
                OscArg::Int(7)
            ]
        )
    );

    // loss 1 in [0, 4] -> 0.25 -> range [100, 1000] -> 100 + 0.25*900 = 325.
    let out = feed(&mut r, 0.0, &loss(7, 1.0));
    assert_eq!(
        osc(&m, &out[0]),
        (
            "/sonograd/loss".into(),
            vec![OscArg::Float(325.0), OscArg::Float(1.0)]
        )
    );

    // update-ratio: 1e-3 in log [1e-5, 1e-1] -> 2/4 = 0.5; then 1e-1 -> 1, smoothed
    // 0.8*0.5 + 0.2*1 = 0.6 (events 100 ms apart, outside the 30 Hz window).
    let out = feed(&mut r, 0.0, &ratio(7, "fc2", 1, 1e-3));
    assert_eq!(
        osc(&m, &out[0]),
        ("/sonograd/ratio/fc2".into(), vec![OscArg::Float(0.5)])
    );
    let out = feed(&mut r, 0.1, &ratio(8, "fc2", 1, 1e-1));
    assert!(close(out[0].level, 0.6), "{}", out[0].level);

    // epoch: epoch 2 ended at step 100.
    let out = feed(&mut r, 1.0, &epoch_end(100, 2));
    assert_eq!(
        osc(&m, &out[0]),
        (
            "/sonograd/epoch".into(),
            vec![OscArg::Int(2), OscArg::Int(100)]
        )
    );

    // alarm: an Inf loss has no layer -> empty layer string.
    let out = feed(&mut r, 1.0, &inf_loss(101));
    assert_eq!(
        osc(&m, &out[0]),
        (
            "/sonograd/alarm".into(),
            vec![OscArg::StaticStr(""), OscArg::Int(101)]
        )
    );
    let out = feed(&mut r, 1.0, &nan_grad(102, "fc3", 2));
    assert_eq!(osc(&m, &out[0]).1[0], OscArg::Str("fc3".into()));
}

#[test]
fn sonic_pi_mapping() {
    let m = load("sonic-pi.toml");
    assert!(matches!(
        m.outputs[0].kind,
        sonograd::mapping::schema::OutputKind::Osc { port: 4560, .. }
    ));
    let mut r = Router::new(&m);

    // grad: fc2 (index 1) 1.0, its first norm -> level 0.5 (the domain is anchored on the
    // layer's own first norms); E2 (40) minor pentatonic over 2 octaves has 11 notes,
    // 0.5*10 = #5, and the second of two layers plays 18 degrees higher (`layer_spread` 3.6
    // octaves): #23 = octave 4, degree 3 (+7) = 40+48+7 = 95: the note number is the value.
    let out = feed(&mut r, 0.0, &grad(1, "fc2", Some(1), 1.0));
    assert_eq!(
        osc(&m, &out[0]),
        (
            "/trigger/grad".into(),
            vec![OscArg::Int(1), OscArg::Float(95.0)]
        )
    );

    // loss 0.75 in [0, 3] -> 0.25, inverted -> 0.75.
    let out = feed(&mut r, 0.0, &loss(1, 0.75));
    assert_eq!(
        osc(&m, &out[0]),
        ("/trigger/loss".into(), vec![OscArg::Float(0.75)])
    );

    // explosion: the raw norm goes out as the argument.
    let out = feed(&mut r, 0.0, &total(1, 1e6));
    assert_eq!(
        osc(&m, &out[0]),
        ("/trigger/explosion".into(), vec![OscArg::Float(1e6)])
    );
    assert!(out[0].alarm);

    let out = feed(&mut r, 0.0, &epoch_end(10, 0));
    assert_eq!(
        osc(&m, &out[0]),
        ("/trigger/epoch".into(), vec![OscArg::Int(0)])
    );
}

/// Each diagnosis kind goes to its own address of an OSC mapping, as one alarm message with
/// the first layer named and the step; none of them to another kind's address.
fn diagnoses_by_address(name: &str, prefix: &str) {
    let m = load(name);
    let mut r = Router::new(&m);
    for (i, kind) in DiagnosisKind::ALL.into_iter().enumerate() {
        let step = 10 + i as u64;
        let out = feed(&mut r, i as f64, &diagnosis(step, kind, &["fc2", "fc3"]));
        assert_eq!(out.len(), 1, "{name}: {kind}");
        assert!(out[0].alarm, "{name}: {kind}");
        assert_eq!(
            osc(&m, &out[0]),
            (
                format!("{prefix}/{}", kind.name()),
                vec![OscArg::Str("fc2".into()), OscArg::Int(step as i32)]
            ),
            "{name}: {kind}"
        );
        // A diagnosis without layers (the loss): an empty layer string.
        let out = feed(&mut r, i as f64 + 0.5, &diagnosis(step, kind, &[]));
        assert_eq!(
            osc(&m, &out[0]).1[0],
            OscArg::StaticStr(""),
            "{name}: {kind}"
        );
    }
}

#[test]
fn supercollider_and_sonic_pi_route_every_diagnosis_to_its_own_address() {
    diagnoses_by_address("supercollider.toml", "/sonograd/diagnosis");
    diagnoses_by_address("sonic-pi.toml", "/trigger/diagnosis");
}

#[test]
fn alarms_only_mapping() {
    let m = load("alarms-only.toml");
    let mut r = Router::new(&m);
    // Ordinary metrics make no sound at all.
    for (i, e) in [
        grad(1, "fc1", Some(0), 5.0),
        loss(1, 2.0),
        lr(1, 0.1),
        total(1, 50.0),
        epoch_end(1, 0),
    ]
    .iter()
    .enumerate()
    {
        assert!(feed(&mut r, i as f64, e).is_empty(), "{e}");
    }
    // A NaN: the synth strike (voice 0, full level) and the terminal line.
    let out = feed(&mut r, 9.0, &nan_grad(2, "fc1", 0));
    assert_eq!(out.len(), 2);
    assert_eq!(synth(&out[0].action), (0, SynthParam::Trigger, 1.0, None));
    assert_eq!(m.outputs[out[1].output as usize].name.as_ref(), "terminal");
    assert!(out.iter().all(|o| o.alarm && o.metric == Metric::NonFinite));
    // Explosion 10000 -> log [1, 1e4] = 1.0 on voice 1, plus the line.
    let out = feed(&mut r, 9.0, &total(3, 10_000.0));
    assert_eq!(out.len(), 2);
    assert_eq!(synth(&out[0].action), (1, SynthParam::Trigger, 1.0, None));
    // Any diagnosis: a line on the terminal.
    for kind in DiagnosisKind::ALL {
        let out = feed(&mut r, 9.5, &diagnosis(4, kind, &[]));
        assert_eq!(out.len(), 1, "{kind}");
        assert_eq!(m.outputs[out[0].output as usize].name.as_ref(), "terminal");
        assert_eq!(&*m.routes[out[0].route as usize].name, "diagnosis-print");
    }
}
