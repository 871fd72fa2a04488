//! `sonograd report`: the folder it writes (pictures that line up, audio, page) and its errors.

use crate::common;
use common::*;

use std::path::Path;

/// A decoded RGB(A) picture.
struct Picture {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

impl Picture {
    fn open(path: &Path) -> Picture {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        pixels.truncate(info.buffer_size());
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => panic!("{}: unexpected colour type {other:?}", path.display()),
        };
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        Picture {
            width: info.width,
            height: info.height,
            channels,
            pixels,
        }
    }

    fn rgb(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let i = (y as usize * self.width as usize + x as usize) * self.channels;
        (self.pixels[i], self.pixels[i + 1], self.pixels[i + 2])
    }

    /// Columns of `x0..x1` that hold a non-white, non-grey pixel in rows `y0..y1`.
    fn coloured_columns(&self, x0: u32, x1: u32, y0: u32, y1: u32) -> usize {
        (x0..x1)
            .filter(|&x| (y0..y1).any(|y| is_coloured(self.rgb(x, y))))
            .count()
    }
}

/// Has hue: not white, grey or black.
fn is_coloured((r, g, b): (u8, u8, u8)) -> bool {
    let (hi, lo) = (r.max(g).max(b), r.min(g).min(b));
    hi - lo > 40
}

fn is_reddish((r, g, b): (u8, u8, u8)) -> bool {
    r > 150 && (r as i32 - g as i32) > 60 && (r as i32 - b as i32) > 60
}

fn report(rec: &Path, dir: &Path, extra: &[&str]) -> CliOutput {
    let mut args = vec!["report", rec.to_str().unwrap(), "-o", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_ok(&args)
}

#[test]
fn the_folder_has_aligned_pictures_the_audio_and_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.jsonl");
    write_report_recording(&rec, 60, Some(40));
    let dir = tmp.path().join("out");
    let out = report(&rec, &dir, &[]);
    assert!(
        out.stderr.contains("report of steps 0–59"),
        "{}",
        out.stderr
    );

    // The audio: 60 steps of 50 ms plus the 1.5 s tail, at 48 kHz.
    let wav = hound::WavReader::open(dir.join("run.wav")).unwrap();
    assert_eq!(wav.spec().sample_rate, 48_000);
    let frames = wav.duration();
    assert_eq!(frames, 4 * 48_000 + 24_000, "{frames} frames");

    // The page: geometry and the sources it plays and shows.
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    let x0: u32 = html_attr(&html, "data-x0").unwrap().parse().unwrap();
    let x1: u32 = html_attr(&html, "data-x1").unwrap().parse().unwrap();
    let seconds: f64 = html_attr(&html, "data-seconds").unwrap().parse().unwrap();
    assert!(
        (seconds - frames as f64 / 48_000.0).abs() < 1e-6,
        "{seconds}"
    );
    assert!(x0 > 20 && x1 > x0 + 500 && x1 < 1200, "{x0}..{x1}");
    for src in ["norms.png", "spectrogram.png", "run.wav"] {
        assert!(
            html.contains(&format!("src=\"{src}\"")),
            "{src} not on the page"
        );
    }
    // The markers table: fc1's NaN from step 40 to the end, seeking to 40 × 50 ms.
    assert!(
        html.contains("data-time=\"2.000000\"><td>40–59</td>"),
        "{html}"
    );
    assert!(html.contains("NaN grad fc1 (×20)"));

    // Both pictures have the same width; their plot areas are not blank.
    let norms = Picture::open(&dir.join("norms.png"));
    let spec = Picture::open(&dir.join("spectrogram.png"));
    assert_eq!((norms.width, norms.height), (1200, 640));
    assert_eq!((spec.width, spec.height), (1200, 340));
    // The gradient panel (top 55 %): coloured lines over most of the steps' width
    // (the steps take 3 s of the 4.5 s: two thirds of the plot area).
    let steps_width = (x1 - x0) as usize * 2 / 3;
    let lines = norms.coloured_columns(x0, x1, 30, 340);
    assert!(
        lines > steps_width * 9 / 10,
        "{lines} coloured columns, steps span {steps_width}"
    );
    // The NaN marker: red at the x of step 40 (position 40 of 90), not at step 20.
    let x_of = |pos: f64| x0 as f64 + pos / 90.0 * (x1 - x0) as f64;
    let red_at = |x: f64| {
        (30..330)
            .filter(|&y| (-1..=2).any(|dx| is_reddish(norms.rgb((x as i32 + dx) as u32, y))))
            .count()
    };
    assert!(red_at(x_of(40.0)) > 100, "{}", red_at(x_of(40.0)));
    assert_eq!(red_at(x_of(20.0)), 0);
    // The spectrogram fills its plot area with colour, and only its plot area: the same
    // columns as the norms picture.
    let mid = spec.height / 2;
    assert!(is_coloured(spec.rgb(x0, mid)) && is_coloured(spec.rgb(x1 - 1, mid)));
    assert!(!is_coloured(spec.rgb(x0 - 3, mid)) && !is_coloured(spec.rgb(x1 + 2, mid)));
    assert_eq!(
        spec.coloured_columns(x0, x1, mid, mid + 1),
        (x1 - x0) as usize
    );
    // While steps play, their tones are the loudest cells (yellow in viridis); late in the
    // ring-out tail there are fewer.
    let loud = |x: u32| -> usize {
        (20..spec.height - 40)
            .filter(|&y| {
                let (r, g, _) = spec.rgb(x, y);
                r > 140 && g > 190
            })
            .count()
    };
    let (playing, tail) = (loud(x_of(20.0) as u32), loud(x_of(80.0) as u32));
    assert!(
        playing >= 6 && playing > 2 * tail,
        "playing {playing}, tail {tail}"
    );
}

#[test]
fn step_ms_sample_rate_and_float_change_the_audio_and_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.jsonl");
    write_report_recording(&rec, 20, None);
    let dir = tmp.path().join("slow");
    report(
        &rec,
        &dir,
        &[
            "--step-ms",
            "100",
            "--sample-rate",
            "16000",
            "--float",
            "--quiet",
        ],
    );
    let wav = hound::WavReader::open(dir.join("run.wav")).unwrap();
    assert_eq!(wav.spec().sample_rate, 16_000);
    assert_eq!(wav.spec().sample_format, hound::SampleFormat::Float);
    // The spectrogram reads float WAVs too: tones while the steps play (the first 2 of 3.5 s).
    let spec = Picture::open(&dir.join("spectrogram.png"));
    let x = 84 + (1176 - 84) / 4;
    let loud = (20..spec.height - 40)
        .filter(|&y| {
            let (r, g, _) = spec.rgb(x, y);
            r > 140 && g > 190
        })
        .count();
    assert!(
        loud >= 3 && loud < (spec.height as usize - 60) / 4,
        "{loud} loud cells at x = {x}"
    );
    // 20 × 100 ms + 1.5 s.
    assert_eq!(wav.duration(), 56_000);
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(html_attr(&html, "data-seconds"), Some("3.500000"));
    assert_eq!(html_attr(&html, "data-step-ms"), Some("100"));
    assert!(html.contains("No non-finite values"));
}

#[test]
fn a_trainer_recording_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("train.jsonl");
    run_ok(&[
        "train",
        "--steps",
        "30",
        "--quiet",
        "--record",
        rec.to_str().unwrap(),
    ]);
    let dir = tmp.path().join("out");
    report(&rec, &dir, &["--quiet"]);
    for f in sonograd::report::FILES {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len > 1000, "{f}: {len} bytes");
    }
    let norms = Picture::open(&dir.join("norms.png"));
    assert!(norms.coloured_columns(84, 1176, 30, 340) > 300);
}

#[test]
fn bad_input_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();

    let missing = tmp.path().join("missing.jsonl");
    fails_with(
        &["report", missing.to_str().unwrap(), "-o", o],
        &["missing.jsonl", "No such file"],
    );

    let bad = tmp.path().join("bad.jsonl");
    let good = loss(0, 1.0).to_json_line();
    std::fs::write(
        &bad,
        format!(
            "{good}\n{good}\n{{\"v\":1,\"step\":2,\"kind\":\"loss\",\"value\":\"x\"}}\n{good}\n"
        ),
    )
    .unwrap();
    fails_with(
        &["report", bad.to_str().unwrap(), "-o", o],
        &["bad.jsonl:3:", "value"],
    );

    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    fails_with(
        &["report", empty.to_str().unwrap(), "-o", o],
        &["empty.jsonl", "no events"],
    );

    // A folder that cannot be created: its parent is a file (root can write anywhere else).
    let rec = tmp.path().join("r.jsonl");
    write_report_recording(&rec, 5, None);
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("out");
    fails_with(
        &[
            "report",
            rec.to_str().unwrap(),
            "-o",
            under_file.to_str().unwrap(),
        ],
        &["cannot create the report folder", "a-file"],
    );

    fails_with(
        &["report", rec.to_str().unwrap(), "-o", o, "--step-ms", "0"],
        &["--step-ms"],
    );
    // A mapping without a synth output has nothing to render.
    let midi = format!("{}/config/daw-midi.toml", env!("CARGO_MANIFEST_DIR"));
    fails_with(
        &["report", rec.to_str().unwrap(), "-o", o, "--mapping", &midi],
        &["synth"],
    );
}
