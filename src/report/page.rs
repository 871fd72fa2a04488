//! `index.html`: both pictures, an audio player whose playhead moves a cursor across them, and
//! the markers as a table. Self-contained (inline CSS and script, relative file names): it
//! works offline, from `file://` or any static server.

use std::fmt::Write;

use super::markers::{MarkerKind, MarkerRange};

/// What the page shows.
#[derive(Clone, Debug)]
pub(crate) struct Page<'a> {
    /// The recording's name, for the title.
    pub title: &'a str,
    /// One line about the run (steps, events, audio length).
    pub summary: String,
    /// The plot area's x pixel range in both pictures (`x0..x1`).
    pub x0: i32,
    /// See `x0`.
    pub x1: i32,
    /// Width of both pictures, pixels.
    pub width: u32,
    /// Height of `norms.png`.
    pub norms_height: u32,
    /// Height of `spectrogram.png`.
    pub spectrogram_height: u32,
    /// Length of `run.wav`, seconds (the plot area spans exactly this).
    pub seconds: f64,
    /// Output time per step, ms.
    pub step_ms: f64,
    /// The markers.
    pub markers: &'a [MarkerRange],
    /// Markers that did not fit in the list.
    pub dropped_markers: u64,
    /// With several runs: their names, in the colours of `compare.png` (shown below the
    /// first run's pictures), and that picture's height.
    pub compare: Option<(&'a [String], u32)>,
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font-family: sans-serif; margin: 1.2em; color: #222; max-width: 1240px; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
.meta { color: #555; margin: 0 0 .8em; }
#player { width: 100%; max-width: 1200px; display: block; margin: .4em 0 .8em; }
.plot { position: relative; line-height: 0; max-width: 1200px; margin-bottom: .5em; }
.plot img { width: 100%; height: auto; display: block; cursor: crosshair; }
.cursor { position: absolute; top: 0; bottom: 0; left: 0; width: 2px; margin-left: -1px;
          background: rgba(230, 20, 20, .85); pointer-events: none; will-change: transform; }
table { border-collapse: collapse; margin-top: .4em; }
th, td { text-align: left; padding: .2em .8em; border-bottom: 1px solid #ddd; }
tbody tr { cursor: pointer; }
tbody tr:hover { background: #f3f3f3; }
.non_finite td.what { color: #c81e1e; }
.diagnosis td.what { color: #c07000; }
.control td.what { color: #2878dc; }
#status { color: #777; font-size: .85em; }
"#;

const SCRIPT: &str = r#"
(function () {
  var plots = document.getElementById('plots');
  var audio = document.getElementById('player');
  var x0 = +plots.dataset.x0, x1 = +plots.dataset.x1;
  var width = +plots.dataset.width, seconds = +plots.dataset.seconds;
  var imgs = Array.prototype.slice.call(plots.querySelectorAll('img'));
  // Audio time -> x pixel of the full-size picture, as the pictures were drawn.
  function xAt(t) {
    var f = Math.min(Math.max(t / seconds, 0), 1);
    return x0 + (x1 - x0) * f;
  }
  function place(t) {
    imgs.forEach(function (img) {
      var cursor = img.parentNode.querySelector('.cursor');
      var scale = img.clientWidth / width;
      cursor.style.transform = 'translateX(' + (xAt(t) * scale) + 'px)';
    });
  }
  var frame = 0;
  function follow() {
    place(audio.currentTime);
    frame = audio.paused ? 0 : requestAnimationFrame(follow);
  }
  audio.addEventListener('timeupdate', function () { place(audio.currentTime); });
  audio.addEventListener('seeked', function () { place(audio.currentTime); });
  audio.addEventListener('play', function () { if (!frame) frame = requestAnimationFrame(follow); });
  window.addEventListener('resize', function () { place(audio.currentTime); });
  function seek(t) {
    audio.currentTime = Math.min(Math.max(t, 0), seconds);
    place(t);
  }
  imgs.forEach(function (img) {
    img.addEventListener('click', function (e) {
      var r = img.getBoundingClientRect();
      var x = (e.clientX - r.left) * width / r.width;
      if (x >= x0 && x <= x1) seek((x - x0) / (x1 - x0) * seconds);
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('#markers tbody tr'), function (tr) {
    tr.addEventListener('click', function () {
      seek(+tr.dataset.time);
      var p = audio.play();
      if (p && p.catch) p.catch(function () {});
    });
  });
  var status = document.getElementById('status');
  var audioState = 'audio pending';
  function report() {
    var parts = imgs.map(function (img) {
      return img.id + '=' + img.naturalWidth + 'x' + img.naturalHeight;
    });
    status.textContent = 'loaded ' + parts.join(' ') + ' ' + audioState;
    status.dataset.state = 'loaded';
  }
  audio.addEventListener('loadedmetadata', function () {
    audioState = 'audio=' + audio.duration.toFixed(3) + 's';
    if (status.dataset.state === 'loaded') report();
  });
  audio.addEventListener('error', function () {
    audioState = 'audio error';
    if (status.dataset.state === 'loaded') report();
  });
  window.addEventListener('load', function () { report(); place(0); });
})();
"#;

/// The page's HTML.
pub(crate) fn render_page(p: &Page) -> String {
    let mut h = String::with_capacity(8192 + p.markers.len() * 160);
    let title = escape(p.title);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>sonograd report: {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>sonograd report: {title}</h1>\n<p class=\"meta\">{}</p>\n\
         <audio id=\"player\" controls preload=\"auto\" src=\"run.wav\"></audio>\n",
        escape(&p.summary)
    );
    let _ = writeln!(
        h,
        "<div id=\"plots\" data-x0=\"{}\" data-x1=\"{}\" data-width=\"{}\" data-seconds=\"{:.6}\" \
         data-step-ms=\"{}\">",
        p.x0, p.x1, p.width, p.seconds, p.step_ms
    );
    for (id, height, alt) in [
        (
            "norms",
            p.norms_height,
            "gradient norms per layer, loss and learning rate by step",
        ),
        (
            "spectrogram",
            p.spectrogram_height,
            "spectrogram of the rendered audio by step",
        ),
    ] {
        let _ = writeln!(
            h,
            "<div class=\"plot\"><img id=\"{id}\" src=\"{id}.png\" width=\"{}\" height=\"{height}\" \
             alt=\"{alt}\"><div class=\"cursor\"></div></div>",
            p.width
        );
    }
    h.push_str("</div>\n");
    if let Some((names, height)) = p.compare {
        let list: Vec<String> = names.iter().map(|n| escape(n)).collect();
        let _ = writeln!(
            h,
            "<h2>Runs compared</h2>\n<p class=\"meta\">{} (one colour each; the audio and the \
             pictures above are of the first input)</p>\n<div class=\"plot\"><img id=\"compare\" \
             src=\"compare.png\" width=\"{}\" height=\"{height}\" alt=\"the runs' gradient \
             norm, loss and learning rate overlaid by step\"></div>",
            list.join(", "),
            p.width
        );
    }
    h.push_str("<h2>Markers</h2>\n");
    if p.markers.is_empty() {
        h.push_str("<p>No non-finite values and no diagnoses in this run.</p>\n");
    }
    h.push_str(
        "<table id=\"markers\">\n<thead><tr><th>step</th><th>time</th><th>what</th></tr></thead>\n<tbody>\n",
    );
    for m in p.markers {
        let time = m.pos as f64 * p.step_ms / 1000.0;
        let steps = if m.last_step > m.marker.step {
            format!("{}–{}", m.marker.step, m.last_step)
        } else {
            m.marker.step.to_string()
        };
        let class = match m.marker.kind {
            MarkerKind::NonFinite => "non_finite",
            MarkerKind::Diagnosis => "diagnosis",
            MarkerKind::Control => "control",
        };
        let times = if m.count > 1 {
            format!(" (×{})", m.count)
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr class=\"{class}\" data-time=\"{time:.6}\"><td>{steps}</td><td>{time:.2} s</td>\
             <td class=\"what\">{}{times}</td></tr>",
            escape(&m.marker.label)
        );
    }
    h.push_str("</tbody>\n</table>\n");
    if p.dropped_markers > 0 {
        let _ = writeln!(h, "<p>{} more markers not listed.</p>", p.dropped_markers);
    }
    let _ = write!(
        h,
        "<p id=\"status\" data-state=\"loading\">loading</p>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markers::Marker;

    fn page(markers: &[MarkerRange]) -> String {
        render_page(&Page {
            compare: None,
            title: "run<1>.jsonl",
            summary: "60 steps".into(),
            x0: 84,
            x1: 1176,
            width: 1200,
            norms_height: 640,
            spectrogram_height: 340,
            seconds: 4.5,
            step_ms: 50.0,
            markers,
            dropped_markers: 0,
        })
    }

    #[test]
    fn the_page_carries_the_geometry_and_relative_sources() {
        let h = page(&[]);
        assert!(h.contains(
            "data-x0=\"84\" data-x1=\"1176\" data-width=\"1200\" data-seconds=\"4.500000\""
        ));
        assert!(h.contains("src=\"norms.png\""));
        assert!(h.contains("src=\"spectrogram.png\""));
        assert!(h.contains("src=\"run.wav\""));
        assert!(h.contains("run&lt;1&gt;.jsonl"), "the title is escaped");
        assert!(!h.contains("http"), "nothing is loaded from the network");
        assert_eq!(h.matches("class=\"cursor\"").count(), 2);
    }

    #[test]
    fn markers_are_rows_that_seek_to_their_time() {
        let m = MarkerRange {
            marker: Marker {
                step: 30,
                kind: MarkerKind::NonFinite,
                label: "NaN grad fc1".into(),
            },
            pos: 20,
            last_step: 35,
            last_pos: 25,
            count: 6,
        };
        let h = page(&[m]);
        assert!(
            h.contains(
                "<tr class=\"non_finite\" data-time=\"1.000000\"><td>30–35</td><td>1.00 s</td>\
             <td class=\"what\">NaN grad fc1 (×6)</td></tr>"
            ),
            "{h}"
        );
    }
}
