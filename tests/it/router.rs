//! Router behaviour: rate limits and alarms, coalescing, finish, reload, monitor lines.

use crate::common;
use common::*;

use sonograd::mapping::parse_str;
use sonograd::message::Action;
use sonograd::pipeline::monitor;
use sonograd::route::Router;

const RATED: &str = r#"
[outputs.synth]
kind = "synth"

[[route]]
name = "norm"
output = "synth"
match = { metric = "total_norm" }
transform = { domain = [0, 10] }
to = { param = "amp", range = [0, 1] }
max_rate_hz = 2
coalesce = "mean"

[[route]]
name = "boom"
output = "synth"
alarm = true
max_rate_hz = 1
match = { metric = "total_norm", when = "value >= 8" }
transform = { domain = [0, 10] }
to = { param = "trigger", voice = 1 }
"#;

#[test]
fn alarms_pass_rate_limits_and_others_are_coalesced() {
    let m = parse_str(RATED, "rated.toml").unwrap();
    let mut r = Router::new(&m);
    let mut out = Vec::new();
    // 10 events inside one 0.5 s window: values 0, 1, ..., 9.
    for i in 0..10u64 {
        r.route(i as f64 * 0.01, &total(i, i as f64), &mut out);
    }
    let norm: Vec<_> = out.iter().filter(|m| m.route == 0).collect();
    let boom: Vec<_> = out.iter().filter(|m| m.route == 1).collect();
    // First value goes straight out; the other 9 wait.
    assert_eq!(norm.len(), 1);
    assert_eq!(norm[0].raw, 0.0);
    // The alarm (8 and 9 are >= 8) fires every time despite max_rate_hz = 1.
    assert_eq!(boom.len(), 2);
    assert!(boom.iter().all(|m| m.alarm));
    out.clear();
    r.tick(0.49, &mut out);
    assert!(out.is_empty());
    r.tick(0.5, &mut out);
    // Mean of 1..=9 = 5 -> level 0.5 -> amp 0.5.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].raw, 5.0);
    assert!(matches!(out[0].action, Action::Synth { value, .. } if close(value, 0.5)));
    assert_eq!(out[0].step, 9);
    // A value held back at the end of the run comes out on finish.
    out.clear();
    r.route(0.6, &total(10, 2.0), &mut out);
    assert!(out.is_empty());
    r.finish(0.61, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].raw, 2.0);
}

#[test]
fn layer_globs_and_eval_names() {
    let src = r#"
[outputs.mon]
kind = "monitor"
[[route]]
output = "mon"
match = { metric = "grad_norm", layer = "fc*" }
to = { param = "amp" }
[[route]]
output = "mon"
match = { metric = "eval", name = "acc*" }
to = { param = "amp" }
"#;
    let m = parse_str(src, "g.toml").unwrap();
    let mut r = Router::new(&m);
    assert_eq!(feed(&mut r, 0.0, &grad(1, "fc1", None, 0.5)).len(), 1);
    assert_eq!(feed(&mut r, 0.0, &grad(1, "conv1", None, 0.5)).len(), 0);
    assert_eq!(feed(&mut r, 0.0, &grad(2, "fc1", None, 0.5)).len(), 1);
    let eval = |name: &str| {
        sonograd::event::Event::new(
            1,
            0,
            0.0,
            sonograd::event::Payload::Eval {
                name: name.into(),
                value: 0.9,
            },
        )
    };
    assert_eq!(feed(&mut r, 0.0, &eval("accuracy")).len(), 1);
    assert_eq!(feed(&mut r, 0.0, &eval("loss")).len(), 0);
}

#[test]
fn reload_keeps_unchanged_routes_and_reports_changed_ones() {
    let a = parse_str(RATED, "a.toml").unwrap();
    let b = parse_str(&RATED.replace("value >= 8", "value >= 9"), "b.toml").unwrap();
    let mut r = Router::new(&a);
    let mut out = Vec::new();
    r.route(0.0, &total(0, 1.0), &mut out);
    r.route(0.1, &total(1, 3.0), &mut out); // held back in "norm"
    assert_eq!(out.len(), 1);
    let changed = r.reload(&b);
    assert_eq!(changed, vec![1], "only `boom` changed");
    out.clear();
    r.tick(0.5, &mut out);
    // "norm" kept its pending value across the reload.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].raw, 3.0);
}

#[test]
fn monitor_lines_are_readable() {
    let m = load("default.toml");
    let mut r = Router::new(&m);
    feed(&mut r, 0.0, &run_start(0, &["fc1", "fc2", "fc3"]));
    let out = feed(&mut r, 12.35, &grad(12, "fc2", None, 1.0));
    assert_eq!(
        monitor::format(&out[0], &m),
        "   12.350s step     12 grad-pitch       synth voice 1 pitch 440.0 Hz pan +0.00  <- grad_norm fc2 = 1"
    );
    let out = feed(&mut r, 13.0, &nan_grad(13, "fc1", 0));
    assert_eq!(
        monitor::format(&out[0], &m),
        "   13.000s step     13 nan-alarm        synth voice 14 trigger 1.0  <- nonfinite fc1 = NaN  ALARM"
    );
    let daw = load("daw-midi.toml");
    let mut r = Router::new(&daw);
    let out = feed(&mut r, 1.0, &grad(3, "fc1", Some(0), 1.0));
    assert_eq!(
        monitor::format(&out[0], &daw),
        "    1.000s step      3 grad-notes       daw ch 1 note 52 (E3) vel 64 200 ms  <- grad_norm fc1 = 1"
    );
    let sc = load("supercollider.toml");
    let mut r = Router::new(&sc);
    let out = feed(&mut r, 2.0, &grad(4, "fc1", Some(0), 1.0));
    assert_eq!(
        monitor::format(&out[0], &sc),
        "    2.000s step      4 grad             sc /sonograd/grad/fc1 0 0.5 1 4  <- grad_norm fc1 = 1"
    );
}

#[test]
fn diagnosis_routes_select_by_kind_and_by_any_named_layer() {
    use sonograd::event::DiagnosisKind;
    let m = parse_str(
        r#"
[outputs.synth]
kind = "synth"
voices = 8

[[route]]
name = "any"
output = "synth"
max_rate_hz = 1
match = { metric = "diagnosis" }
to = { param = "trigger", voice = 0 }

[[route]]
name = "dead-fc2"
output = "synth"
match = { metric = "diagnosis", diagnosis = "dead_layer", layer = "fc2" }
to = { param = "trigger", voice = 1 }

[[route]]
name = "per-layer"
output = "synth"
per_layer = true
match = { metric = "diagnosis", diagnosis = "vanishing" }
to = { param = "trigger", voice = 4 }
"#,
        "diag.toml",
    )
    .unwrap();
    let mut r = Router::new(&m);
    feed(&mut r, 0.0, &run_start(0, &["fc1", "fc2", "fc3"]));
    let names = |out: &[sonograd::message::Message]| -> Vec<String> {
        out.iter()
            .map(|o| m.routes[o.route as usize].name.to_string())
            .collect()
    };
    // A dead fc1 + fc2: `any` and `dead-fc2` (fc2 is among the layers), both alarms, so the
    // rate limit of `any` does not hold the second diagnosis back.
    let out = feed(
        &mut r,
        0.0,
        &diagnosis(5, DiagnosisKind::DeadLayer, &["fc1", "fc2"]),
    );
    assert_eq!(names(&out), ["any", "dead-fc2"]);
    assert!(out
        .iter()
        .all(|o| o.alarm && o.level == 1.0 && o.raw == 2.0));
    let out = feed(
        &mut r,
        0.1,
        &diagnosis(6, DiagnosisKind::DeadLayer, &["fc3"]),
    );
    assert_eq!(names(&out), ["any"]);
    // Vanishing in fc2, fc3: placed by its first layer (fc2 = index 1): voice 4 + 1.
    let out = feed(
        &mut r,
        0.2,
        &diagnosis(7, DiagnosisKind::Vanishing, &["fc2", "fc3"]),
    );
    assert_eq!(names(&out), ["any", "per-layer"]);
    match out[1].action {
        Action::Synth { voice, .. } => assert_eq!(voice, 5),
        ref other => panic!("{other:?}"),
    }
    // A diagnosis with no layer matches no layer glob.
    let out = feed(&mut r, 0.3, &diagnosis(8, DiagnosisKind::DeadLayer, &[]));
    assert_eq!(names(&out), ["any"]);
}
