//! TensorBoard event files: written by the real writers (tensorboard's own, PyTorch's
//! `SummaryWriter`, a Lightning run) and replayed value for value; damaged and cut files;
//! `listen --tensorboard` following a writer; two runs rendered side by side; a report
//! overlaying several runs.
//!
//! The tests that run the venv's Python (scripts/setup-python.sh) fail when it is missing and
//! `CI` or `SONOGRAD_REQUIRE_TORCH=1` is set; elsewhere they say SKIPPED.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_clean_error, error_line, parse_lines, run_cli, run_ok};
use prost::Message;
use sonograd::event::{Event, NonFiniteKind, Payload, Quantity};
use sonograd::source::tensorboard::{framing, proto};

// --- Python writers -----------------------------------------------------------------------

fn python() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}

/// Whether the venv's Python imports `modules`; when it does not, a note, or a failure under
/// `CI` / `SONOGRAD_REQUIRE_TORCH=1`.
fn importable(modules: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let required = std::env::var_os("CI").is_some()
            || std::env::var("SONOGRAD_REQUIRE_TORCH").as_deref() == Ok("1");
        assert!(
            !required,
            "{modules} must import for {} (CI or SONOGRAD_REQUIRE_TORCH=1 is set; run scripts/setup-python.sh)",
            python().display()
        );
        eprintln!(
            "SKIPPED: {modules} does not import for {} (scripts/setup-python.sh)",
            python().display()
        );
    }
    ok
}

fn writers_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tensorboard_py/writers.py")
}

/// A value the writer wrote, as it reports it.
#[derive(Clone, Debug, serde::Deserialize)]
struct Written {
    run: String,
    tag: String,
    step: u64,
    value: serde_json::Value,
}

impl Written {
    fn value(&self) -> f64 {
        match &self.value {
            serde_json::Value::Number(n) => n.as_f64().unwrap(),
            serde_json::Value::String(s) => s.parse().unwrap(),
            v => panic!("value {v}"),
        }
    }
}

/// Runs the writer `form` into `dir`; the values it wrote.
fn write_with(form: &str, dir: &Path, seed: u64, steps: u64) -> Vec<Written> {
    let out = Command::new(python())
        .arg(writers_py())
        .args([
            form,
            dir.to_str().unwrap(),
            &seed.to_string(),
            &steps.to_string(),
        ])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "writers.py {form} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `sonograd replay PATH --json` (no detector) and its events.
fn replay(path: &Path, extra: &[&str]) -> (Vec<Event>, String) {
    let mut args = vec![
        "replay",
        path.to_str().unwrap(),
        "--json",
        "--no-diagnose",
        "-q",
    ];
    args.extend_from_slice(extra);
    let out = run_ok(&args);
    (parse_lines(&out.stdout, "replay stdout"), out.stderr)
}

/// What an event says, as (run, step, kind:name, value); non-finite ones as kind `non_finite:…`.
fn key(e: &Event) -> (String, u64, String) {
    let run = e.run.as_deref().unwrap_or("").to_string();
    let what = match &e.payload {
        Payload::GradNorm { layer, .. } => format!("grad_norm:{}", layer.name),
        Payload::Eval { name, .. } => format!("eval:{name}"),
        Payload::NonFinite {
            layer, quantity, ..
        } => format!(
            "non_finite:{quantity:?}:{}",
            layer.as_ref().map_or("", |l| &l.name)
        ),
        p => p.kind().to_string(),
    };
    (run, e.step, what)
}

fn by_key(events: &[Event]) -> HashMap<(String, u64, String), f64> {
    let mut m = HashMap::new();
    for e in events {
        let v = e.payload.value().unwrap_or(f64::NAN);
        assert!(m.insert(key(e), v).is_none(), "two events for {:?}", key(e));
    }
    m
}

/// Checks that `events` are exactly the written values, each through `what(tag)`.
fn assert_exact(events: &[Event], written: &[Written], what: impl Fn(&str) -> String) {
    let got = by_key(events);
    for w in written {
        let v = w.value();
        let k = if v.is_finite() {
            (w.run.clone(), w.step, what(&w.tag))
        } else {
            (w.run.clone(), w.step, "non_finite:Loss:".to_string())
        };
        let found = got
            .get(&k)
            .unwrap_or_else(|| panic!("no event {k:?} for {w:?}"));
        if v.is_finite() {
            assert_eq!(found.to_bits(), v.to_bits(), "{k:?}: {found} != {v}");
        }
    }
    assert_eq!(
        events.len(),
        written.len(),
        "one event per value, nothing else"
    );
}

fn conventional(tag: &str) -> String {
    match tag {
        "train/loss" => "loss".into(),
        "lr" => "lr".into(),
        "accuracy" => "eval:accuracy".into(),
        t => t.replace("grad_norm/", "grad_norm:"),
    }
}

#[test]
fn files_of_tensorboards_own_writer_replay_exactly_in_both_forms() {
    if !importable("tensorboard, numpy") {
        return;
    }
    for (form, seed, steps) in [("tf1", 1, 30), ("tf2", 7, 45), ("tf1", 3, 4)] {
        let d = tempfile::tempdir().unwrap();
        let written = write_with(form, d.path(), seed, steps);
        assert_eq!(written.len() as u64, 4 * steps);
        let (events, stderr) = replay(d.path(), &[]);
        assert!(!stderr.contains("warning"), "{form}: {stderr}");
        assert_exact(&events, &written, conventional);
        if form == "tf1" {
            let nan = events
                .iter()
                .find(|e| e.payload.kind() == "non_finite")
                .expect("the NaN loss");
            assert_eq!(nan.step, steps / 2);
            assert!(matches!(
                nan.payload,
                Payload::NonFinite {
                    quantity: Quantity::Loss,
                    state: NonFiniteKind::Nan,
                    layer: None
                }
            ));
        }
        // The file itself (not the folder): the same values, without a run tag.
        let file = std::fs::read_dir(d.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let (alone, _) = replay(&file, &[]);
        assert_eq!(alone.len(), events.len());
        assert!(alone.iter().all(|e| e.run.is_none()));
        assert!(events.iter().all(|e| e.run.as_deref() == Some(".")));
    }
}

#[test]
fn pytorch_summary_writer_files_replay_exactly() {
    if !importable("torch, torch.utils.tensorboard") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let written = write_with("torch", d.path(), 11, 25);
    let (events, stderr) = replay(d.path(), &[]);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert_exact(&events, &written, conventional);
    let runs: std::collections::BTreeSet<_> = events.iter().map(|e| e.run.clone()).collect();
    assert_eq!(
        runs.into_iter()
            .flatten()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        [".", "accuracy_train", "accuracy_val"],
        "add_scalars writes one run per sub-tag"
    );
    // --tags overrides: fc2 becomes a weight norm, the loss is ignored, lr named explicitly.
    let (mapped, _) = replay(
        d.path(),
        &[
            "--tags",
            "weight_norm:fc2=grad_norm/fc2,ignore=train/loss,lr=lr",
        ],
    );
    assert_eq!(common::count_kind(&mapped, "loss"), 0);
    assert_eq!(common::count_kind(&mapped, "weight_norm"), 25);
    assert_eq!(common::count_kind(&mapped, "grad_norm"), 25, "fc1 only");
    let listing = run_ok(&["replay", d.path().to_str().unwrap(), "--list-tags"]).stdout;
    for needle in [
        "run .",
        "run accuracy_train",
        "grad_norm/fc1",
        "-> grad_norm:fc1",
        "train/loss",
        "-> loss",
        "25 values, steps 0–24",
        "-> eval:accuracy",
    ] {
        assert!(listing.contains(needle), "{needle:?} not in:\n{listing}");
    }
    assert!(
        !listing.contains("weights"),
        "histograms are not scalars:\n{listing}"
    );
}

#[test]
fn a_lightning_run_with_its_tensorboard_logger_and_grad_norms() {
    if !importable("lightning.pytorch, tensorboard") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let read_back = write_with("lightning", d.path(), 5, 12);
    let (events, stderr) = replay(d.path(), &[]);
    assert!(!stderr.contains("warning"), "{stderr}");
    let run = "lightning/version_0";
    assert!(events.iter().all(|e| e.run.as_deref() == Some(run)));
    let got = by_key(&events);
    // Per step: the layer norms are the parameter norms summed in squares.
    let mut squares: HashMap<(u64, String), f64> = HashMap::new();
    let mut checked = 0;
    for w in &read_back {
        let v = w.value();
        if let Some(param) = w.tag.strip_prefix("grad_2.0_norm/") {
            let layer = param.rsplit_once('.').unwrap().0.to_string();
            *squares.entry((w.step, layer)).or_default() += v * v;
            continue;
        }
        let what = match w.tag.as_str() {
            "grad_2.0_norm_total" => "total_norm".to_string(),
            "train_loss_step" => "loss".to_string(),
            "train_loss_epoch" | "val_loss" => format!("eval:{}", w.tag),
            "epoch" => continue,
            t => panic!("unexpected tag {t}"),
        };
        let k = (run.to_string(), w.step, what);
        let found = got.get(&k).unwrap_or_else(|| panic!("no {k:?}"));
        assert_eq!(found.to_bits(), v.to_bits(), "{k:?}");
        checked += 1;
    }
    assert!(checked >= 24, "{checked} values checked");
    assert_eq!(squares.len(), 2 * 12, "two layers, twelve steps");
    for ((step, layer), sum) in &squares {
        let k = (run.to_string(), *step, format!("grad_norm:{layer}"));
        let found = got.get(&k).unwrap_or_else(|| panic!("no {k:?}"));
        assert!(
            (found - sum.sqrt()).abs() <= 1e-12 * sum.sqrt(),
            "{k:?}: {found} vs {}",
            sum.sqrt()
        );
    }
    // The epoch tag sets the epoch: the second epoch's steps are in epoch 1.
    let last = events
        .iter()
        .rfind(|e| e.payload.kind() == "grad_norm")
        .unwrap();
    assert_eq!((last.step, last.epoch), (11, 1));
    // Routed through the default mapping, detector on, paced so that rate limits pass each
    // step: both layers and the loss are heard.
    let out = run_ok(&[
        "replay",
        d.path().to_str().unwrap(),
        "--monitor",
        "--step-ms",
        "30",
        "-q",
    ]);
    for needle in [
        "<- grad_norm net.0 = ",
        "<- grad_norm net.2 = ",
        "<- loss = ",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            out.stdout
        );
    }
}

// --- Damaged, cut and wrong files (no Python needed) --------------------------------------

/// An event file of `steps` steps, a loss and two layer norms each (TF1 form); and each
/// record's offset.
fn event_file(path: &Path, steps: u64, seed: u64) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    let version = proto::Event {
        wall_time: 1.7e9,
        step: 0,
        file_version: Some("brain.Event:2".into()),
        summary: None,
    };
    offsets.push(out.len());
    framing::frame(&version.encode_to_vec(), &mut out);
    for s in 0..steps {
        for (tag, v) in [
            ("loss", 1.0 + ((s * 7 + seed) % 13) as f32 * 0.125),
            ("grad_norm/fc1", 0.5 + s as f32),
            ("grad_norm/fc2", 0.25 * (seed + 1) as f32),
        ] {
            let e = proto::Event {
                wall_time: 1.7e9 + s as f64,
                step: s as i64,
                file_version: None,
                summary: Some(proto::Summary {
                    value: vec![proto::SummaryValue {
                        tag: tag.into(),
                        simple_value: Some(v),
                        tensor: None,
                        metadata: None,
                    }],
                }),
            };
            offsets.push(out.len());
            framing::frame(&e.encode_to_vec(), &mut out);
        }
    }
    std::fs::write(path, &out).unwrap();
    (out, offsets)
}

#[test]
fn damaged_records_are_skipped_with_their_offset_and_a_cut_tail_is_no_error() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("events.out.tfevents.1.test");
    let (bytes, offsets) = event_file(&path, 10, 0);
    let (clean, _) = replay(&path, &[]);
    assert_eq!(clean.len(), 30);

    // The data of record 5 and the length of record 20 are damaged.
    let mut hit = bytes.clone();
    hit[offsets[5] + 14] ^= 0x20;
    hit[offsets[20] + 1] ^= 0x01;
    std::fs::write(&path, &hit).unwrap();
    let (events, stderr) = replay(&path, &[]);
    assert_eq!(events.len(), 28, "{stderr}");
    for o in [offsets[5], offsets[20]] {
        let needle = format!("{}: offset {o}: damaged record skipped", path.display());
        assert!(stderr.contains(&needle), "{needle:?} not in:\n{stderr}");
    }
    assert!(stderr.contains("2 damaged record(s) skipped"), "{stderr}");
    let lost: Vec<_> = clean
        .iter()
        .filter(|c| !events.iter().any(|e| key(e) == key(c)))
        .map(key)
        .collect();
    assert_eq!(lost.len(), 2, "{lost:?}");

    // Cut inside the last record: every whole record plays, a note, exit 0.
    for cut in [1, 5, 20] {
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let (events, stderr) = replay(&path, &[]);
        assert_eq!(events.len(), 29, "cut {cut}");
        assert!(
            stderr.contains("unfinished last record skipped"),
            "{stderr}"
        );
        assert!(!stderr.contains("damaged"), "{stderr}");
    }
}

#[test]
fn bad_files_and_bad_tag_maps_are_clean_errors() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("events.out.tfevents.9.junk");
    std::fs::write(
        &junk,
        "{\"v\":1,\"step\":0,\"kind\":\"loss\",\"value\":1}\n",
    )
    .unwrap();
    let args = ["replay", junk.to_str().unwrap()];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    assert!(
        error_line(&out).contains(&format!(
            "{}: offset 0: not a TensorBoard event file",
            junk.display()
        )),
        "{}",
        out.stderr
    );

    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let args = ["replay", empty.to_str().unwrap()];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    assert!(
        error_line(&out).contains("no TensorBoard event files"),
        "{}",
        out.stderr
    );

    let good = d.path().join("good");
    std::fs::create_dir(&good).unwrap();
    event_file(&good.join("events.out.tfevents.1.x"), 3, 1);
    for (tags, needle) in [
        (
            "grad_norm=loss",
            "--tags: \"grad_norm\" needs a layer: grad_norm:LAYER=TAG",
        ),
        ("wobble=loss", "--tags: unknown key \"wobble\""),
        (
            "loss=nope",
            "--tags: no run has the tag \"nope\" (tags found: grad_norm/fc1, grad_norm/fc2, loss)",
        ),
    ] {
        let args = ["replay", good.to_str().unwrap(), "--tags", tags];
        let out = run_cli(&args);
        assert_clean_error(&out, &args);
        assert!(error_line(&out).contains(needle), "{tags}: {}", out.stderr);
    }
    // --tags on a JSON-lines recording is a mistake too.
    let rec = d.path().join("r.jsonl");
    common::write_report_recording(&rec, 3, None);
    let args = ["replay", rec.to_str().unwrap(), "--tags", "loss=x"];
    let out = run_cli(&args);
    assert_clean_error(&out, &args);
    assert!(error_line(&out).contains("not a TensorBoard event file or folder"));
}

// --- listen --tensorboard -----------------------------------------------------------------

#[test]
fn listen_follows_a_writer_that_keeps_appending() {
    if !importable("torch, torch.utils.tensorboard") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut listen = Command::new(env!("CARGO_BIN_EXE_sonograd"))
        .args([
            "listen",
            "--tensorboard",
            d.path().to_str().unwrap(),
            "--json",
            "--no-diagnose",
        ])
        .env("SONOGRAD_NO_AUDIO", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(char, String, Instant)>();
    let pipe = |r: Box<dyn std::io::Read + Send>, tag: char, tx: std::sync::mpsc::Sender<_>| {
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send((tag, line, Instant::now()));
            }
        })
    };
    pipe(Box::new(listen.stdout.take().unwrap()), 'o', tx.clone());
    pipe(Box::new(listen.stderr.take().unwrap()), 'e', tx.clone());
    let started = Instant::now();
    loop {
        let (src, line, _) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("listen starts");
        if src == 'e' && line.starts_with("listening: tensorboard") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let steps = 10;
    let mut writer = Command::new(python())
        .arg(writers_py())
        .args([
            "append",
            d.path().to_str().unwrap(),
            "0",
            &steps.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    pipe(Box::new(writer.stdout.take().unwrap()), 'w', tx.clone());
    let mut wrote: Vec<(String, u64, Instant)> = Vec::new();
    let mut heard: Vec<(Event, Instant)> = Vec::new();
    let mut stderr = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let expected = steps + steps / 2;
    while heard.len() < expected as usize && Instant::now() < deadline {
        let Ok((src, line, at)) = rx.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        match src {
            'w' => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                wrote.push((parts[1].to_string(), parts[2].parse().unwrap(), at));
            }
            'o' => heard.push((Event::from_json_line(&line).unwrap(), at)),
            _ => stderr.push(line),
        }
    }
    assert!(writer.wait().unwrap().success());
    // SAFETY: signalling our own child process by its id.
    unsafe {
        libc::kill(listen.id() as i32, libc::SIGTERM);
    }
    assert!(listen.wait().unwrap().success(), "{stderr:?}");
    assert_eq!(
        heard.len() as u64,
        expected,
        "heard {heard:?}\nstderr {stderr:?}"
    );
    for (run, step, at) in &wrote {
        let (e, when) = heard
            .iter()
            .find(|(e, _)| e.run.as_deref() == Some(run) && e.step == *step)
            .unwrap_or_else(|| panic!("{run} step {step} not heard"));
        let delay = when.saturating_duration_since(*at);
        assert!(
            delay < Duration::from_secs(1),
            "{run} step {step} after {delay:?}"
        );
        match (run.as_str(), &e.payload) {
            ("first", Payload::Loss { value }) => {
                assert_eq!(*value, (1.0 / (*step as f32 + 1.0)) as f64)
            }
            ("second", Payload::GradNorm { value, .. }) => assert_eq!(*value, *step as f64 * 0.5),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        stderr.iter().any(|l| l == "run found: second"),
        "{stderr:?}"
    );
}

// --- Two runs side by side; several in a report -------------------------------------------

fn jsonl_run(path: &Path, steps: u64, scale: f64) {
    let mut text = String::new();
    for s in 0..steps {
        for (i, name) in ["fc1", "fc2"].iter().enumerate() {
            let v = scale * 10f64.powf((s as f64 * 0.3 + i as f64).sin());
            text += &common::grad(s, name, Some(i as u32), v).to_json_line();
            text.push('\n');
        }
        text += &common::loss(s, scale / (1.0 + s as f64)).to_json_line();
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn wav(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let mut r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().channels, 2);
    let s: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    (
        s.iter().step_by(2).copied().collect(),
        s.iter().skip(1).step_by(2).copied().collect(),
    )
}

fn energy(x: &[f32]) -> f64 {
    x.iter().map(|v| (*v as f64).powi(2)).sum()
}

#[test]
fn two_runs_render_side_by_side_and_alternating() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.jsonl"), d.path().join("b.jsonl"));
    jsonl_run(&a, 24, 1.0);
    jsonl_run(&b, 24, 1e-3);
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let render = |inputs: &[&Path], out: &str, extra: &[&str]| {
        let out = d.path().join(out);
        let mut args = vec!["render".to_string()];
        args.extend(inputs.iter().map(|x| p(x)));
        args.extend(["-o".into(), p(&out), "--float".into(), "-q".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args);
        wav(&out)
    };
    let (al, ar) = render(&[&a], "a.wav", &[]);
    let (bl, br) = render(&[&b], "b.wav", &[]);
    let (l, r) = render(&[&a, &b], "ab.wav", &[]);
    assert_eq!(l.len(), al.len(), "aligned by step: the same length");
    let mono = |x: &[f32], y: &[f32]| -> Vec<f32> {
        x.iter()
            .zip(y)
            .map(|(p, q)| (p + q) * std::f32::consts::FRAC_1_SQRT_2)
            .collect()
    };
    let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-5);
    assert!(close(&l, &mono(&al, &ar)), "the left channel is A");
    assert!(close(&r, &mono(&bl, &br)), "the right channel is B");
    assert!(!close(&l, &r), "A and B differ");

    // Alternating: A's step, then B's: twice the steps.
    let (xl, _) = render(&[&a, &b], "alt.wav", &["--compare", "alternate"]);
    let step = 2400; // 50 ms at 48 kHz
    let tail = 72_000; // 1.5 s
    assert_eq!(xl.len(), 2 * 24 * step + tail);
    assert!(
        close(&xl[..step], &al[..step]),
        "the first slot is A's first step"
    );

    // Any two readable sources: a TensorBoard file against a recording.
    let tb = d.path().join("events.out.tfevents.1.pair");
    event_file(&tb, 24, 2);
    let (tl, tr) = render(&[&tb, &a], "tb_a.wav", &[]);
    assert!(energy(&tl) > 0.0 && energy(&tr) > 0.0);
    assert!(close(&tr, &mono(&al, &ar)), "the recording is on the right");
}

#[test]
fn a_report_overlays_several_runs_one_colour_each() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.jsonl");
    jsonl_run(&a, 40, 1.0);
    let tb = d.path().join("tb");
    std::fs::create_dir(&tb).unwrap();
    event_file(&tb.join("events.out.tfevents.1.x"), 60, 4);
    let csv = d.path().join("c.csv");
    let mut text = "Step,loss,gn\n".to_string();
    for s in 0..50 {
        text += &format!("{s},{},{}\n", 3.0 / (1.0 + s as f64), 0.1 * (s + 1) as f64);
    }
    std::fs::write(&csv, text).unwrap();
    let out = d.path().join("report");
    run_ok(&[
        "report",
        a.to_str().unwrap(),
        tb.to_str().unwrap(),
        csv.to_str().unwrap(),
        "--csv-columns",
        "step=Step,loss=loss,total_norm=gn",
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Runs compared"), "{html}");
    for name in [&a, &tb, &csv] {
        assert!(
            html.contains(&name.display().to_string()),
            "{} not on the page",
            name.display()
        );
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("compare.png")).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let count = |rgb: (u8, u8, u8)| {
        buf[..info.buffer_size()]
            .chunks(px)
            .filter(|c| (c[0], c[1], c[2]) == rgb)
            .count()
    };
    for (i, rgb) in [(31, 119, 180), (214, 39, 40), (44, 160, 44)]
        .into_iter()
        .enumerate()
    {
        assert!(
            count(rgb) > 200,
            "run {i}'s colour {rgb:?}: {} pixels",
            count(rgb)
        );
    }
    assert!(count((148, 103, 189)) == 0, "no fourth run colour");
    // One run: no comparison.
    let single = d.path().join("single");
    run_ok(&[
        "report",
        tb.to_str().unwrap(),
        "-o",
        single.to_str().unwrap(),
        "-q",
    ]);
    assert!(!single.join("compare.png").exists());
    // One folder of two runs: one curve each.
    let two = d.path().join("two");
    for (run, seed) in [("lr_0.1", 1), ("lr_1.0", 2)] {
        std::fs::create_dir_all(two.join(run)).unwrap();
        event_file(&two.join(run).join("events.out.tfevents.1.x"), 30, seed);
    }
    let out2 = d.path().join("report2");
    run_ok(&[
        "report",
        two.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
        "-q",
    ]);
    let html = std::fs::read_to_string(out2.join("index.html")).unwrap();
    for run in ["lr_0.1", "lr_1.0"] {
        let name = format!("{}/{run}", two.display());
        assert!(html.contains(&name), "{name} not on the page");
    }
    assert!(out2.join("compare.png").exists());
}
