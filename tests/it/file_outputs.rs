//! File outputs from any command, with no live port: a machine with no ALSA sequencer (a
//! training server, this CI) still writes the shipped MIDI mapping's `.mid`, and `render`
//! writes the WAV, the `.mid` and the OSC score in one pass.

use crate::common;

use std::path::Path;
use std::process::Command;

const SOUNDFONT: &str = "/usr/share/sounds/sf2/TimGM6mb.sf2";

fn sonograd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sonograd"))
        .args(args)
        .env("SONOGRAD_NO_AUDIO", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Note-ons in a Standard MIDI File, read with midly.
fn note_ons(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    smf.tracks
        .iter()
        .flatten()
        .filter(|e| {
            matches!(
                e.kind,
                midly::TrackEventKind::Midi {
                    message: midly::MidiMessage::NoteOn { vel, .. },
                    ..
                } if vel > 0
            )
        })
        .count()
}

fn no_sequencer() -> bool {
    !Path::new("/dev/snd/seq").exists()
}

#[test]
fn replay_writes_the_shipped_midi_mapping_to_a_file_that_fluidsynth_plays() {
    if !common::require_peers(&["fluidsynth"])
        || !common::require(Path::new(SOUNDFONT).exists(), SOUNDFONT)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 24);
    let mid = dir.path().join("run.mid");
    let out = sonograd(&[
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        "config/daw-midi.toml",
        "--midi-file",
        mid.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    if no_sequencer() {
        // The mapping's live port cannot open here: one warning, and the file is written.
        assert_eq!(
            stderr.matches("warning:").count(),
            1,
            "one warning for the port:\n{stderr}"
        );
        assert!(stderr.contains("going on without it"), "{stderr}");
    }
    assert!(note_ons(&mid) >= 24, "{} note-ons", note_ons(&mid));
    let wav = dir.path().join("run.wav");
    let synth = Command::new("fluidsynth")
        .args(["-ni", "-q", "-r", "48000", "-F"])
        .arg(&wav)
        .arg(SOUNDFONT)
        .arg(&mid)
        .output()
        .unwrap();
    assert!(synth.status.success());
    let (_, l, r) = common::read_wav(&wav);
    let rms = common::rms(&common::mono(&l, &r));
    assert!(
        rms > 0.001,
        "fluidsynth's render of the .mid is silent (rms {rms})"
    );
}

#[test]
fn a_port_named_on_the_command_line_that_cannot_open_is_an_error() {
    if !no_sequencer() {
        eprintln!("this machine has an ALSA sequencer: a virtual port would open");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 4);
    let out = sonograd(&[
        "replay",
        rec.to_str().unwrap(),
        "--mapping",
        "config/daw-midi.toml",
        "--midi-virtual",
        "sonograd-test",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}

#[test]
fn render_writes_wav_midi_and_score_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("run.jsonl");
    common::write_recording(&rec, 40);
    let (wav, mid, osc) = (
        dir.path().join("a.wav"),
        dir.path().join("a.mid"),
        dir.path().join("a.osc"),
    );
    // The default mapping: synth voices to the WAV and the score.
    let out = sonograd(&[
        "render",
        rec.to_str().unwrap(),
        "-o",
        wav.to_str().unwrap(),
        "--osc-score",
        osc.to_str().unwrap(),
        "--step-ms",
        "40",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (rate, l, _) = common::read_wav(&wav);
    // 40 steps at 40 ms, plus the tail.
    let secs = l.len() as f64 / rate as f64;
    assert!((1.6..4.0).contains(&secs), "{secs} s of audio");
    assert!(std::fs::metadata(&osc).unwrap().len() > 100);
    // The MIDI mapping with no synth output: no -o, only the files, and no live port.
    let out = sonograd(&[
        "render",
        rec.to_str().unwrap(),
        "--mapping",
        "config/daw-midi.toml",
        "--midi-file",
        mid.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("warning"),
        "render opens no port: {stderr}"
    );
    assert!(note_ons(&mid) >= 40, "{} note-ons", note_ons(&mid));
    // Nothing to write is a usage error.
    let out = sonograd(&["render", rec.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// A MIDI file that cannot be written is lost data: the command says which file and exits
/// non-zero, from `replay` (the pipeline's file sink) and from `render` alike.
#[test]
fn an_unwritable_midi_file_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run.jsonl");
    common::write_recording(&run, 20);
    let run = run.to_str().unwrap();
    let mid = "/nonexistent/dir/out.mid";
    for args in [
        vec!["replay", run, "--midi-file", mid],
        vec!["render", run, "--midi-file", mid],
    ] {
        let out = common::fails_with(&args, &["cannot write MIDI file", mid]);
        assert_eq!(
            out.stderr.matches(mid).count(),
            1,
            "said once: {args:?}\n{}",
            out.stderr
        );
    }
}
