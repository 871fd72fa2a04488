//! The report page in a real browser: headless Chromium loads `index.html` from `file://`,
//! both pictures decode, and the audio player's source is the WAV the report wrote.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package, or `SONOGRAD_CHROMIUM`).
//! Without it the test skips with a note, except under CI (`common::require`), where it fails.

use crate::common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SONOGRAD_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome", "chrome"] {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs headless Chromium on `url` and returns the DOM it dumps; kills it after `limit`.
fn dump_dom(chromium: &Path, url: &str, profile: &Path, limit: Duration) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            "--window-size=1400,1200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    // Read both pipes on threads so a chatty browser cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).ok();
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {limit:?}; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = out.join().unwrap();
    let stderr = err.join().unwrap();
    assert!(
        status.success() && !dom.is_empty(),
        "chromium failed ({status}); stderr:\n{stderr}"
    );
    dom
}

/// The text of the element with `id`, from a dumped DOM.
fn element_text<'a>(dom: &'a str, id: &str) -> &'a str {
    let key = format!("id=\"{id}\"");
    let at = dom
        .find(&key)
        .unwrap_or_else(|| panic!("no element #{id} in:\n{dom}"));
    let start = at + dom[at..].find('>').unwrap() + 1;
    let end = start + dom[start..].find('<').unwrap();
    &dom[start..end]
}

#[test]
fn the_page_loads_in_headless_chromium_with_both_pictures_and_the_audio() {
    let found = find_chromium();
    let what = "no chromium found (Debian's `chromium` package, or set SONOGRAD_CHROMIUM)";
    if !require(found.is_some(), what) {
        return;
    }
    let chromium = found.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("r.jsonl");
    write_report_recording(&rec, 60, Some(40));
    let dir = tmp.path().join("report");
    run_ok(&[
        "report",
        rec.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "--quiet",
    ]);
    let index = dir.join("index.html").canonicalize().unwrap();
    let url = format!("file://{}", index.display());
    let profile = tmp.path().join("chromium-profile");
    let dom = dump_dom(&chromium, &url, &profile, Duration::from_secs(90));

    // The page's own script ran after `load` and saw both pictures decoded.
    let status = element_text(&dom, "status");
    assert!(status.starts_with("loaded "), "status: {status:?}");
    assert!(
        status.contains("norms=1200x640") && status.contains("spectrogram=1200x340"),
        "the pictures did not decode: {status:?}"
    );
    assert!(dom.contains("data-state=\"loaded\""));

    // The player's source is a file beside the page and a WAV of the expected length
    // (60 steps × 50 ms + 1.5 s tail).
    let audio = dom.find("<audio").expect("no <audio> in the page");
    let src = html_attr(&dom[audio..], "src").unwrap();
    let wav_path = index.parent().unwrap().join(src);
    let wav =
        hound::WavReader::open(&wav_path).unwrap_or_else(|e| panic!("{}: {e}", wav_path.display()));
    let seconds = wav.duration() as f64 / wav.spec().sample_rate as f64;
    assert!((seconds - 4.5).abs() < 1e-9, "{seconds} s");
    // Chromium read the WAV's header too: the player knows its length.
    assert!(
        status.contains("audio=4.500s"),
        "the audio element did not load run.wav: {status:?}"
    );
    // The cursors were placed at time 0: at the plot area's left edge.
    let x0: f64 = html_attr(&dom, "data-x0").unwrap().parse().unwrap();
    assert!(
        dom.contains(&format!("translateX({}px)", x0)),
        "cursor not at x0 = {x0}"
    );
}
