//! The Standard MIDI File rendered by fluidsynth (GM piano): each step's pitch is the
//! note sent for it.

use crate::common;

use std::process::Command;

use sonograd::mapping;
use sonograd::message::Action;
use sonograd::output::midi_file::{MidiFileConfig, MidiFileWriter};
use sonograd::output::scsynth::note_hz;
use sonograd::output::Output;

const SOUNDFONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

const MAPPING: &str = r#"
[outputs.daw]
kind = "midi"
virtual = "sonograd"
[[route]]
name = "loss-notes"
output = "daw"
match = { metric = "loss" }
transform = { domain = [0, 3] }
to = { note = "value", range = [60, 84], velocity = 110, length_ms = 200 }
"#;

#[test]
fn rendered_pitch_per_step_matches_the_notes() {
    if !common::require_peers(&["fluidsynth"]) {
        return;
    }
    let font = std::path::Path::new(SOUNDFONT).exists();
    if !common::require(
        font,
        &format!("{SOUNDFONT} missing (apt package timgm6mb-soundfont)"),
    ) {
        return;
    }
    let m = mapping::parse_str(MAPPING, "inline.toml").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 16);
    let msgs = common::replay(&rec, &m, 0.1);
    assert_eq!(msgs.len(), 16);

    let mid = dir.path().join("run.mid");
    // 120 bpm, 2 steps a beat: a step is 0.25 s.
    let config = MidiFileConfig {
        ppq: 480,
        bpm: 120.0,
        steps_per_beat: 2.0,
    };
    let mut w = MidiFileWriter::new(&mid, config);
    for msg in &msgs {
        w.send(msg, &m);
    }
    w.close();
    assert!(w.take_error().is_none());

    let wav = dir.path().join("run.wav");
    let out = Command::new("fluidsynth")
        .args([
            "-ni",
            "-q",
            "-r",
            "48000",
            "-g",
            "0.8",
            "-F",
            wav.to_str().unwrap(),
            SOUNDFONT,
            mid.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fluidsynth failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (sr, l, r) = common::read_wav(&wav);
    let (samples, rate) = (common::mono(&l, &r), sr as f64);
    let mut bad = Vec::new();
    let mut notes = Vec::new();
    for msg in &msgs {
        let Action::Note { note, .. } = msg.action else {
            panic!("not a note")
        };
        notes.push(note);
        let start = ((msg.step as f64 * 0.25 + 0.04) * rate) as usize;
        let got = common::peak_hz(&samples[start..start + 4096], sr);
        let want = note_hz(note) as f64;
        // Within a third of a semitone.
        if (got / want).log2().abs() * 12.0 > 0.33 {
            bad.push((msg.step, note, want, got));
        }
    }
    assert!(
        notes.windows(2).any(|w| w[0] != w[1]),
        "the notes move: {notes:?}"
    );
    assert!(
        bad.is_empty(),
        "(step, note, expected Hz, rendered Hz): {bad:?}"
    );
}
