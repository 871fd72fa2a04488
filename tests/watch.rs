//! Live reload: a changed mapping file is re-validated and delivered within 0.5 s; an invalid
//! one yields diagnostics.

use std::fs;
use std::time::{Duration, Instant};

use sonograd::mapping::watch::{MappingWatcher, Reload};

const GOOD: &str = "[outputs.s]\nkind = \"synth\"\n[[route]]\noutput = \"s\"\nmatch = { metric = \"loss\" }\nto = { param = \"amp\" }\n";

fn exercise(watcher: MappingWatcher, path: &std::path::Path) {
    // Let the watcher settle before the first change.
    std::thread::sleep(Duration::from_millis(50));
    let changed = GOOD.replace("\"amp\"", "\"cutoff\"");
    fs::write(path, &changed).unwrap();
    let t = Instant::now();
    match watcher.recv_timeout(Duration::from_millis(500)) {
        Some(Reload::Applied(m)) => {
            assert!(t.elapsed() <= Duration::from_millis(500));
            assert!(matches!(
                m.routes[0].target,
                sonograd::mapping::schema::Target::Synth {
                    param: sonograd::mapping::schema::SynthParam::Cutoff,
                    ..
                }
            ));
        }
        other => panic!("expected the new mapping within 0.5 s, got {other:?}"),
    }
    fs::write(
        path,
        changed.replace("metric = \"loss\"", "metric = \"los\""),
    )
    .unwrap();
    match watcher.recv_timeout(Duration::from_millis(500)) {
        Some(Reload::Rejected(d)) => assert!(d.to_string().contains("did you mean `loss`"), "{d}"),
        other => panic!("expected diagnostics, got {other:?}"),
    }
}

#[test]
fn native_watcher_applies_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    fs::write(&path, GOOD).unwrap();
    let w = MappingWatcher::new(&path).unwrap();
    exercise(w, &path);
}

#[test]
fn polling_watcher_applies_and_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    fs::write(&path, GOOD).unwrap();
    let w = MappingWatcher::polling(&path, Duration::from_millis(50)).unwrap();
    assert!(w.is_polling());
    exercise(w, &path);
}
