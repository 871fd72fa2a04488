//! Patch files: the shipped ones load, bad ones are rejected with positions.

use sonograd::synth::patch::{Gate, Patch, Wave, BUILTIN};

#[test]
fn shipped_patches_are_valid_and_match_the_files() {
    for (file, src) in BUILTIN {
        let path = format!("{}/patches/{file}", env!("CARGO_MANIFEST_DIR"));
        let on_disk = Patch::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(on_disk, Patch::parse(src, file).unwrap());
    }
    let alarm = Patch::builtin("alarm").unwrap();
    assert_eq!(alarm.gate, Gate::Trigger);
    assert!(alarm.pitch_hz < 100.0 && alarm.sweep.is_some());
    assert!(matches!(
        Patch::builtin("explosion").unwrap().wave,
        Wave::Fm { .. }
    ));
    assert_eq!(Patch::builtin("pluck").unwrap().gate, Gate::Pitch);
    assert!(Patch::builtin("drone").unwrap().glide_ms > 0.0);
    assert!(Patch::builtin("nope").is_none());
}

#[test]
fn unknown_key_is_rejected_with_line() {
    let e = Patch::parse("name = \"x\"\n[envelope]\nattack = 3\n", "p.toml").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("p.toml:3:"), "{text}");
    assert!(text.contains("attack"), "{text}");
}

#[test]
fn out_of_range_and_bad_names_are_all_reported() {
    let src = "gain = 3\n[osc]\nwave = \"organ\"\n[filter]\ncutoff = 5\n";
    let e = Patch::parse(src, "q.toml").unwrap_err();
    let lines: Vec<usize> = e.iter().map(|d| d.line).collect();
    assert_eq!(lines, vec![1, 3, 5], "{e}");
    assert!(
        e.to_string().contains("gain: expected a number in 0..=1"),
        "{e}"
    );
}

#[test]
fn fm_keys_only_for_fm() {
    let e = Patch::parse("[osc]\nwave = \"sine\"\nratio = 2\n", "r.toml").unwrap_err();
    assert!(e.to_string().contains("r.toml:3:"), "{e}");
    let p = Patch::parse("[osc]\nwave = \"fm\"\nratio = 3\nindex = 0.5\n", "f.toml").unwrap();
    assert_eq!(
        p.wave,
        Wave::Fm {
            ratio: 3.0,
            index: 0.5
        }
    );
}
