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

/// A mapping whose synth voice plays `patch_ref` (a patch file): editing only the patch file
/// reloads the mapping with the new patch; breaking it is rejected naming its line.
fn exercise_patch_file(make: impl Fn(&std::path::Path) -> MappingWatcher, patch_ref: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    let patch = dir.path().join(patch_ref);
    fs::create_dir_all(patch.parent().unwrap()).unwrap();
    fs::write(&patch, "pitch = 300\n").unwrap();
    let text = GOOD.replace(
        "kind = \"synth\"\n",
        &format!("kind = \"synth\"\npatch = \"{patch_ref}\"\n"),
    );
    fs::write(&path, text).unwrap();
    let watcher = make(&path);
    std::thread::sleep(Duration::from_millis(50));
    let pitch = |m: &sonograd::mapping::Mapping| m.synth_patches()[0].pitch_hz;
    fs::write(&patch, "pitch = 600\n").unwrap();
    match watcher.recv_timeout(Duration::from_millis(1500)) {
        Some(Reload::Applied(m)) => assert_eq!(pitch(&m), 600.0),
        other => panic!("expected the new patch, got {other:?}"),
    }
    fs::write(&patch, "pitch = 600\ngain = 7\n").unwrap();
    match watcher.recv_timeout(Duration::from_millis(1500)) {
        Some(Reload::Rejected(d)) => {
            let shown = d.to_string();
            assert!(
                shown.contains(&format!("in patch file {}:2:8: gain", patch.display())),
                "{shown}"
            );
        }
        other => panic!("expected diagnostics, got {other:?}"),
    }
    fs::write(&patch, "pitch = 900\n").unwrap();
    match watcher.recv_timeout(Duration::from_millis(1500)) {
        Some(Reload::Applied(m)) => assert_eq!(pitch(&m), 900.0),
        other => panic!("expected the fixed patch, got {other:?}"),
    }
    // Nothing changed since: no further reload.
    assert!(watcher.recv_timeout(Duration::from_millis(300)).is_none());
}

#[test]
fn polling_watcher_follows_a_patch_file_in_a_subfolder() {
    exercise_patch_file(
        |p| MappingWatcher::polling(p, Duration::from_millis(50)).unwrap(),
        "sounds/lead.toml",
    );
}

#[test]
fn native_watcher_follows_a_patch_file_beside_the_mapping() {
    exercise_patch_file(|p| MappingWatcher::new(p).unwrap(), "lead.toml");
}
