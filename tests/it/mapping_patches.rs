//! Mapping files choose the built-in synth's patch per voice (`patch`, `patches`): parsing,
//! every error with file, line and key path, and the choice heard in rendered WAVs.

use crate::common;

use std::path::Path;

use common::{assert_clean_error, error_line, run_cli, run_ok};
use common::{band_energy, mono, peak_hz, read_wav, rms, step_window};
use sonograd::mapping::schema::{Mapping, OutputKind};
use sonograd::mapping::{self, parse_str, Diagnostics};
use sonograd::synth::patch::{Patch, Wave};

const ROUTE: &str =
    "\n[[route]]\noutput = \"s\"\nmatch = { metric = \"loss\" }\nto = { param = \"amp\" }\n";

/// A mapping with one synth output `s` whose table holds `synth` (after `kind`).
fn synth_mapping(synth: &str) -> String {
    format!("[outputs.s]\nkind = \"synth\"\n{synth}\n{ROUTE}")
}

/// The patch names of output `s`'s voices.
fn names(m: &Mapping) -> Vec<String> {
    match &m.outputs[m.output_by_name("s").unwrap() as usize].kind {
        OutputKind::Synth {
            voices, patches, ..
        } => {
            assert_eq!(patches.len(), *voices as usize);
            patches.iter().map(|p| p.name.to_string()).collect()
        }
        other => panic!("{other:?}"),
    }
}

fn parse(synth: &str) -> Mapping {
    parse_str(&synth_mapping(synth), "p.toml").unwrap_or_else(|d| panic!("{d}"))
}

fn fails(synth: &str) -> Diagnostics {
    match parse_str(&synth_mapping(synth), "p.toml") {
        Ok(m) => panic!("accepted: {:?}", names(&m)),
        Err(d) => d,
    }
}

/// The one diagnostic of `d`, which must start with `prefix` and contain `needle`.
fn one(d: &Diagnostics, prefix: &str, needle: &str) {
    assert_eq!(d.len(), 1, "{d}");
    let shown = d.to_string();
    assert!(
        shown.starts_with(prefix),
        "expected {prefix:?} in:\n{shown}"
    );
    assert!(shown.contains(needle), "expected {needle:?} in:\n{shown}");
}

#[test]
fn without_patch_keys_the_voices_keep_the_default_assignment() {
    let m = parse("voices = 17");
    let mut expected = vec!["sine".to_string(); 17];
    expected[13] = "explosion".into();
    expected[14] = "alarm".into();
    expected[15] = "drone".into();
    assert_eq!(names(&m), expected);
    assert_eq!(names(&parse("voices = 3")), ["sine", "sine", "sine"]);
    // 16 voices by default.
    assert_eq!(names(&parse("")).len(), 16);
}

#[test]
fn patches_entries_win_over_patch_which_wins_over_the_default() {
    let m = parse(
        "voices = 16\npatch = \"pluck\"\npatches = { \"0-2\" = \"drone\", 13 = \"explosion\", \"15\" = \"alarm\", 7-7 = \"sine\" }",
    );
    let n = names(&m);
    assert_eq!(&n[0..3], ["drone", "drone", "drone"]);
    assert_eq!(n[3], "pluck");
    assert_eq!(n[7], "sine");
    assert_eq!(n[13], "explosion");
    // Voice 14 is not listed: `patch` applies, not the default alarm.
    assert_eq!(n[14], "pluck");
    assert_eq!(n[15], "alarm");
    assert_eq!(n.iter().filter(|x| *x == "pluck").count(), 10);
    // The patches themselves, not just their names, are the built-in ones.
    let OutputKind::Synth { patches, .. } = &m.outputs[0].kind else {
        unreachable!()
    };
    assert_eq!(patches[3], Patch::builtin("pluck").unwrap());
    assert_eq!(m.synth_patches(), *patches);
    // `patches` alone: the default for the rest.
    let n = names(&parse("voices = 16\npatches = { \"0-3\" = \"pluck\" }"));
    assert_eq!(n[3], "pluck");
    assert_eq!(n[4], "sine");
    assert_eq!(n[15], "drone");
}

#[test]
fn patches_may_be_a_table_of_its_own() {
    let src = "[outputs.s]\nkind = \"synth\"\nvoices = 4\n\n[outputs.s.patches]\n0-1 = \"pluck\"\n3 = \"drone\"\n"
        .to_string()
        + ROUTE;
    let m = parse_str(&src, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(names(&m), ["pluck", "pluck", "sine", "drone"]);
}

#[test]
fn synth_patches_lays_outputs_end_to_end() {
    let src = format!(
        "[outputs.a]\nkind = \"synth\"\nvoices = 2\npatch = \"pluck\"\n[outputs.b]\nkind = \"synth\"\nvoices = 3\npatches = {{ 2 = \"drone\" }}\n[outputs.m]\nkind = \"monitor\"\n{}",
        ROUTE.replace("\"s\"", "\"a\"")
    );
    let m = parse_str(&src, "two.toml").unwrap_or_else(|d| panic!("{d}"));
    let all: Vec<String> = m
        .synth_patches()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(all, ["pluck", "pluck", "sine", "sine", "drone"]);
}

#[test]
fn an_unknown_built_in_name_gets_a_suggestion() {
    let d = fails("patch = \"pluk\"");
    one(
        &d,
        "p.toml:3:9: outputs.s.patch: unknown patch `pluk`, did you mean `pluck`?",
        "`explosion`",
    );
    let d = fails("patches = { 1 = \"exploson\" }");
    one(
        &d,
        "p.toml:3:17: outputs.s.patches.1: unknown patch `exploson`, did you mean `explosion`?",
        "",
    );
    let d = fails("patch = 3");
    one(
        &d,
        "p.toml:3:9: outputs.s.patch: expected a patch: a built-in name",
        "found the integer 3",
    );
    let d = fails("patch = \"\"");
    one(&d, "p.toml:3:9: outputs.s.patch: expected a patch", "empty");
}

#[test]
fn voice_indices_outside_the_output_are_rejected() {
    let d = fails("voices = 4\npatches = { 4 = \"pluck\" }");
    one(
        &d,
        "p.toml:4:13: outputs.s.patches.4: voice 4 out of range",
        "this output has 4 voices (0-3)",
    );
    let d = fails("voices = 8\npatches = { \"6-9\" = \"pluck\" }");
    one(
        &d,
        "p.toml:4:13: outputs.s.patches.6-9: voices 6-9 out of range",
        "(0-7)",
    );
}

#[test]
fn overlapping_entries_are_rejected_at_the_later_one() {
    let d = fails("voices = 8\npatches = { \"4-6\" = \"drone\", \"0-4\" = \"pluck\" }");
    one(
        &d,
        "p.toml:4:30: outputs.s.patches.0-4: voices 0-4 overlap the entry \"4-6\" (line 4)",
        "voice 4 would have two patches",
    );
}

#[test]
fn bad_range_syntax_is_rejected() {
    for (key, needle) in [
        (
            "a-b",
            "expected a voice index like \"13\" or an inclusive range like \"0-3\"",
        ),
        ("-1", "expected a voice index"),
        ("1-2-3", "expected a voice index"),
        ("3-1", "goes backwards"),
    ] {
        let d = fails(&format!("patches = {{ \"{key}\" = \"pluck\" }}"));
        one(
            &d,
            &format!("p.toml:3:13: outputs.s.patches.{key}: "),
            needle,
        );
    }
    let d = fails("patches = [\"pluck\"]");
    one(&d, "p.toml:3:11: outputs.s.patches: expected a table", "");
}

#[test]
fn patch_keys_belong_to_synth_outputs_only() {
    let src = "[outputs.s]\nkind = \"midi\"\npatch = \"pluck\"\n[[route]]\noutput = \"s\"\nmatch = { metric = \"loss\" }\nto = { cc = 1 }\n";
    let d = parse_str(src, "m.toml").unwrap_err();
    one(
        &d,
        "m.toml:3:1: outputs.s: key `patch` does not apply to a midi output",
        "",
    );
}

/// A folder holding `maps/m.toml` (with `synth` in its synth output) and `maps/sounds/`.
fn mapping_dir(synth: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let maps = dir.path().join("maps");
    std::fs::create_dir_all(maps.join("sounds")).unwrap();
    let file = maps.join("m.toml");
    std::fs::write(&file, synth_mapping(synth)).unwrap();
    (dir, file)
}

#[test]
fn a_patch_file_is_read_relative_to_the_mapping_file() {
    let (_dir, file) = mapping_dir("voices = 3\npatches = { 1 = \"sounds/buzz.toml\" }");
    let sounds = file.parent().unwrap().join("sounds");
    std::fs::write(
        sounds.join("buzz.toml"),
        "pitch = 1500\ngain = 0.9\n[osc]\nwave = \"square\"\n",
    )
    .unwrap();
    let m = mapping::check(&file).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(names(&m), ["sine", "buzz", "sine"]);
    let p = &m.synth_patches()[1];
    assert_eq!((p.pitch_hz, p.gain, p.wave), (1500.0, 0.9, Wave::Square));
    // The file is known to the mapping (the reload watcher follows it).
    assert_eq!(m.patch_files(), [sounds.join("buzz.toml")]);
}

#[test]
fn a_missing_patch_file_names_the_path_it_tried() {
    let (_dir, file) = mapping_dir("patch = \"sounds/nope.toml\"");
    let d = mapping::check(&file).unwrap_err();
    let tried = file.parent().unwrap().join("sounds/nope.toml");
    one(
        &d,
        &format!("{}:3:9: outputs.s.patch: patch file ", file.display()),
        &format!("`{}` not found", tried.display()),
    );
}

#[test]
fn a_broken_patch_file_reports_its_own_lines_where_the_mapping_names_it() {
    let (_dir, file) = mapping_dir(
        "voices = 4\npatches = { 0 = \"sounds/bad.toml\", 1 = \"pluck\", \"2-3\" = \"sounds/bad.toml\" }",
    );
    let bad = file.parent().unwrap().join("sounds/bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\n\ngain = 2\n[envelope]\nattack_ms = -1\n",
    )
    .unwrap();
    let d = mapping::check(&file).unwrap_err();
    let lines: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    assert_eq!(lines.len(), 3, "{d}");
    let at = format!(
        "{}:4:17: outputs.s.patches.0: in patch file ",
        file.display()
    );
    assert_eq!(
        lines[0],
        format!(
            "{at}{}:3:8: gain: expected a number in 0..=1, found 2",
            bad.display()
        )
    );
    assert!(
        lines[1].starts_with(&format!("{at}{}:5:13: envelope.attack_ms:", bad.display())),
        "{}",
        lines[1]
    );
    // The second reference does not repeat the file's problems.
    assert!(
        lines[2].starts_with(&format!(
            "{}:4:57: outputs.s.patches.2-3: patch file `{}` is invalid",
            file.display(),
            bad.display()
        )),
        "{}",
        lines[2]
    );
    // A TOML syntax error inside the patch file is one diagnostic with its position.
    std::fs::write(&bad, "gain = = 1\n").unwrap();
    let d = mapping::check(&file).unwrap_err();
    assert!(
        d.to_string()
            .contains(&format!("in patch file {}:1:", bad.display())),
        "{d}"
    );
}

// --- The choice reaches the audio ---------------------------------------------------------

const STEP_MS: f64 = 200.0;

/// A recording of 6 steps of two layers' gradient norms (rising, so every step is a new note).
fn write_recording(path: &Path) {
    let mut text = String::new();
    for s in 0..6u64 {
        for (i, layer) in ["fc1", "fc2"].iter().enumerate() {
            let v = 0.01 * (s + 1) as f64 * 10f64.powi(i as i32);
            text += &format!(
                "{{\"v\":1,\"step\":{s},\"kind\":\"grad_norm\",\"layer\":\"{layer}\",\"layer_index\":{i},\"value\":{v}}}\n"
            );
        }
    }
    std::fs::write(path, text).unwrap();
}

/// Renders the recording through a mapping whose per-layer pitch route plays on voices 0-1
/// of a 4-voice synth with `synth` in its output table; returns the mono samples.
fn render_layers(dir: &Path, name: &str, synth: &str) -> (u32, Vec<f32>) {
    let rec = dir.join("rec.jsonl");
    write_recording(&rec);
    let map = dir.join(format!("{name}.toml"));
    std::fs::write(
        &map,
        format!(
            "description = \"{name}\"\n[outputs.s]\nkind = \"synth\"\nvoices = 4\n{synth}\n\n\
             [[route]]\noutput = \"s\"\nper_layer = true\nmatch = {{ metric = \"grad_norm\" }}\n\
             transform = {{ domain = [1e-3, 10], curve = \"log\" }}\nto = {{ param = \"pitch\", voice = 0 }}\n"
        ),
    )
    .unwrap();
    let wav = dir.join(format!("{name}.wav"));
    let step = STEP_MS.to_string();
    run_ok(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        wav.to_str().unwrap(),
        "--mapping",
        map.to_str().unwrap(),
        "--step-ms",
        &step,
        "--float",
        "-q",
    ]);
    let (sr, l, r) = read_wav(&wav);
    (sr, mono(&l, &r))
}

#[test]
fn pluck_layer_voices_decay_within_each_step_while_sine_holds() {
    let dir = tempfile::tempdir().unwrap();
    let (sr, pluck) = render_layers(dir.path(), "pluck", "patches = { \"0-1\" = \"pluck\" }");
    let (sr2, sine) = render_layers(dir.path(), "sine", "patches = { \"0-1\" = \"sine\" }");
    assert_eq!(sr, sr2);
    // First and last quarter of each step (steps 1-4: away from the start and the tail).
    let q = STEP_MS / 4.0;
    for s in 1..5 {
        let head = |x: &[f32]| rms(step_window(x, sr, STEP_MS, s, 2.0, q));
        let end = |x: &[f32]| rms(step_window(x, sr, STEP_MS, s, 3.0 * q, STEP_MS));
        let (ph, pe) = (head(&pluck), end(&pluck));
        assert!(
            ph > 0.02 && ph > 10.0 * pe,
            "pluck step {s}: first quarter {ph}, last quarter {pe}"
        );
        let (sh, se) = (head(&sine), end(&sine));
        assert!(
            sh > 0.02 && se > 0.7 * sh,
            "sine step {s}: first quarter {sh}, last quarter {se}"
        );
    }
}

#[test]
fn a_user_patch_file_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let sounds = dir.path().join("sounds");
    std::fs::create_dir(&sounds).unwrap();
    // A loud square wave at 1500 Hz. The route below only sets the amplitude, so each voice
    // sounds at its patch's own pitch: 1500 Hz for this file, 220 Hz for the built-in sine.
    std::fs::write(
        sounds.join("buzz.toml"),
        "pitch = 1500\ngain = 0.5\nhold_ms = 300\n[osc]\nwave = \"square\"\n[envelope]\nattack_ms = 1\n",
    )
    .unwrap();
    let rec = dir.path().join("rec.jsonl");
    write_recording(&rec);
    let render = |name: &str, patch: &str| {
        let map = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &map,
            format!(
                "description = \"{name}\"\n[outputs.s]\nkind = \"synth\"\nvoices = 2\npatch = \"{patch}\"\n\n\
                 [[route]]\noutput = \"s\"\nmatch = {{ metric = \"grad_norm\", layer = \"fc1\" }}\n\
                 transform = {{ domain = [0, 0.001] }}\nto = {{ param = \"amp\", voice = 0 }}\n"
            ),
        )
        .unwrap();
        let wav = dir.path().join(format!("{name}.wav"));
        // Run from another folder: the patch path is relative to the mapping, not the cwd.
        let out = common::sonograd(&[
            "render",
            rec.to_str().unwrap(),
            "-o",
            wav.to_str().unwrap(),
            "--mapping",
            map.to_str().unwrap(),
            "--float",
            "-q",
        ])
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (sr, l, r) = read_wav(&wav);
        (sr, mono(&l, &r))
    };
    let (sr, buzz) = render("buzz", "sounds/buzz.toml");
    let (_, sine) = render("plain", "sine");
    // Steps 1-4 at the default 50 ms a step.
    let window = |x: &[f32]| step_window(x, sr, 50.0, 1, 0.0, 200.0).to_vec();
    let (b, s) = (window(&buzz), window(&sine));
    let (fb, fs) = (peak_hz(&b, sr), peak_hz(&s, sr));
    assert!((fb - 1500.0).abs() < 15.0, "user patch peak {fb} Hz");
    assert!((fs - 220.0).abs() < 5.0, "sine patch peak {fs} Hz");
    // A square wave has a strong third harmonic; the sine has none.
    let third = |x: &[f32], f: f64| {
        band_energy(x, sr, 2.9 * f, 3.1 * f) / band_energy(x, sr, 0.9 * f, 1.1 * f)
    };
    let (hb, hs) = (third(&b, 1500.0), third(&s, 220.0));
    assert!(hb > 0.05, "user patch third harmonic ratio {hb}");
    assert!(hs < 1e-3, "sine third harmonic ratio {hs}");
    // And it is louder: its gain is 0.5 against the sine's 0.18.
    assert!(rms(&b) > 2.0 * rms(&s), "{} vs {}", rms(&b), rms(&s));
}

#[test]
fn check_rejects_a_bad_patch_name_with_file_and_line() {
    let (_dir, file) = mapping_dir("voices = 4\npatches = { \"0-1\" = \"plukc\", 2 = \"drone\" }");
    let path = file.to_str().unwrap();
    let out = run_cli(&["check", path]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "{path}:4:21: outputs.s.patches.0-1: unknown patch `plukc`"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Commands that play a mapping refuse it the same way.
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    write_recording(&rec);
    let wav = dir.path().join("x.wav");
    let args = [
        "render",
        rec.to_str().unwrap(),
        "-o",
        wav.to_str().unwrap(),
        "--mapping",
        path,
    ];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    assert!(
        out.stderr.contains(&format!("{path}:4:21:")),
        "{}",
        error_line(&out)
    );
    assert!(!wav.exists());
}
