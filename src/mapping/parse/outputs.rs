//! `[outputs.NAME]`: the synth (with its voices' patches), MIDI, OSC and the monitor.

use super::values::*;
use super::*;

/// The kinds of output, by their `kind` name.
#[derive(Clone, Copy)]
enum Kind {
    Synth,
    Midi,
    Osc,
    Monitor,
}

const OUTPUT_KINDS: &[(&str, Kind)] = &[
    ("synth", Kind::Synth),
    ("midi", Kind::Midi),
    ("osc", Kind::Osc),
    ("monitor", Kind::Monitor),
];
const PROTOCOLS: &[(&str, OscProtocol)] = &[("udp", OscProtocol::Udp), ("tcp", OscProtocol::Tcp)];
const SYNTH_KEYS: &[&str] = &["kind", "voices", "patch", "patches"];
const MIDI_KEYS: &[&str] = &["kind", "port", "virtual", "channel"];
const OSC_KEYS: &[&str] = &["kind", "host", "port", "protocol", "latency_ms"];
const MONITOR_KEYS: &[&str] = &["kind"];

impl Cx<'_> {
    pub(super) fn output(&mut self, v: &Val<'_>, path: &str) -> Option<OutputKind> {
        let t = self.table(v, path)?;
        let all: Vec<&str> = [SYNTH_KEYS, MIDI_KEYS, OSC_KEYS]
            .concat()
            .into_iter()
            .filter(|k| *k != "kind")
            .collect();
        let Some(kind_v) = get(t, "kind") else {
            self.keys(
                t,
                path,
                &[&["kind"], all.as_slice()].concat(),
                &[],
                "an output",
            );
            self.missing(
                v.span(),
                path,
                "kind",
                "one of `synth`, `midi`, `osc`, `monitor`",
            );
            return None;
        };
        let kind = self.choice(kind_v, &join(path, "kind"), "output kind", OUTPUT_KINDS);
        let Some(kind) = kind else {
            self.keys(
                t,
                path,
                &[&["kind"], all.as_slice()].concat(),
                &[],
                "an output",
            );
            return None;
        };
        let (allowed, name) = match kind {
            Kind::Synth => (SYNTH_KEYS, "synth"),
            Kind::Midi => (MIDI_KEYS, "midi"),
            Kind::Osc => (OSC_KEYS, "osc"),
            Kind::Monitor => (MONITOR_KEYS, "monitor"),
        };
        let whose = format!("a {name} output");
        self.keys(t, path, allowed, &all, &whose);
        let mut ok = true;
        let out = match kind {
            Kind::Synth => {
                let voices = match get(t, "voices") {
                    Some(v) => {
                        self.integer(v, &join(path, "voices"), 1, 256, "a voice count 1-256")
                    }
                    None => Some(defaults::VOICES as i64),
                };
                let voices = voices.map(|v| v as u32);
                let patches = self.voice_patches(t, path, voices);
                OutputKind::Synth {
                    voices: voices.unwrap_or(defaults::VOICES),
                    patches,
                    patch_files: std::mem::take(&mut self.referenced),
                }
            }
            Kind::Midi => {
                let channel = self
                    .channel(get(t, "channel"), &join(path, "channel"), &mut ok)
                    .unwrap_or(1);
                let port = match (get(t, "port"), get(t, "virtual")) {
                    (Some(p), Some(virt)) => {
                        let _ = p;
                        self.err(
                            virt.span(),
                            &join(path, "virtual"),
                            "give either `port` (an existing port) or `virtual` (a port to create), not both",
                        );
                        None
                    }
                    (Some(p), None) => self.midi_port(p, &join(path, "port")),
                    (None, Some(virt)) => self
                        .string(virt, &join(path, "virtual"))
                        .map(|s| MidiPort::Virtual(s.to_string())),
                    (None, None) => Some(MidiPort::Index(0)),
                };
                OutputKind::Midi {
                    port: port.unwrap_or(MidiPort::Index(0)),
                    channel,
                }
            }
            Kind::Osc => {
                let host = match get(t, "host") {
                    Some(h) => match self.string(h, &join(path, "host")) {
                        Some("") => {
                            self.err(
                                h.span(),
                                &join(path, "host"),
                                "expected a host name or address, found an empty string",
                            );
                            None
                        }
                        other => other,
                    },
                    None => Some(defaults::OSC_HOST),
                };
                let port = match get(t, "port") {
                    Some(p) => {
                        self.integer(p, &join(path, "port"), 1, 65535, "a port number 1-65535")
                    }
                    None => {
                        self.missing(v.span(), path, "port", "the OSC port number, e.g. 57120");
                        None
                    }
                };
                let protocol = match get(t, "protocol") {
                    Some(p) => self.choice(p, &join(path, "protocol"), "protocol", PROTOCOLS),
                    None => Some(defaults::OSC_PROTOCOL),
                };
                let latency_ms = match get(t, "latency_ms") {
                    Some(l) => self.integer(
                        l,
                        &join(path, "latency_ms"),
                        0,
                        10_000,
                        "a latency 0-10000 ms",
                    ),
                    None => Some(defaults::OSC_LATENCY_MS as i64),
                };
                OutputKind::Osc {
                    host: host.unwrap_or(defaults::OSC_HOST).to_string(),
                    port: port.unwrap_or(1) as u16,
                    protocol: protocol.unwrap_or(defaults::OSC_PROTOCOL),
                    latency_ms: latency_ms.map_or(defaults::OSC_LATENCY_MS, |l| l as u32),
                }
            }
            Kind::Monitor => OutputKind::Monitor,
        };
        Some(out)
    }

    /// The patch of every voice of a synth output from its `patch` and `patches` keys (see
    /// [`super::patches`]); `voices` is `None` when the count itself was invalid (then voice
    /// indices are not checked against it). The patch files it names are left in `referenced`.
    pub(super) fn voice_patches(
        &mut self,
        t: &DeTable<'_>,
        path: &str,
        voices: Option<u32>,
    ) -> Vec<Patch> {
        self.referenced.clear();
        let count = voices.unwrap_or(defaults::VOICES);
        let which = |(a, b): (u32, u32)| {
            if a == b {
                format!("voice {a}")
            } else {
                format!("voices {a}-{b}")
            }
        };
        let fallback = get(t, "patch").and_then(|v| self.patch(v, &join(path, "patch")));
        let mut chosen: Vec<Option<Patch>> = vec![None; count as usize];
        if let Some(pv) = get(t, "patches") {
            let ppath = join(path, "patches");
            if let Some(pt) = self.table(pv, &ppath) {
                // Entries so far: (first, last, key, line).
                let mut taken: Vec<(u32, u32, String, usize)> = Vec::new();
                // In file order (the table itself is sorted by key), so that the later of two
                // overlapping entries is the one reported.
                let mut entries: Vec<_> = pt.iter().collect();
                entries.sort_by_key(|(k, _)| k.span().start);
                for (k, v) in entries {
                    let key = k.get_ref().as_ref();
                    let kpath = join(&ppath, key);
                    let mut range = match voice_range(key) {
                        Ok(r) => Some(r),
                        Err(msg) => {
                            self.err(k.span(), &kpath, msg);
                            None
                        }
                    };
                    if let (Some((a, b)), Some(n)) = (range, voices) {
                        if b >= n {
                            let which = which((a, b));
                            self.err(
                                k.span(),
                                &kpath,
                                format!(
                                    "{which} out of range: this output has {n} voices (0-{})",
                                    n - 1
                                ),
                            );
                            range = None;
                        }
                    }
                    if let Some((a, b)) = range {
                        if let Some((x, y, other, line)) =
                            taken.iter().find(|(x, y, _, _)| a <= *y && *x <= b)
                        {
                            let msg = format!(
                                "{} overlap{} the entry {other:?} (line {line}): {} would have two patches",
                                which((a, b)),
                                if a == b { "s" } else { "" },
                                which((a.max(*x), b.min(*y)))
                            );
                            self.err(k.span(), &kpath, msg);
                            range = None;
                        } else {
                            let line = line_col(self.src, k.span().start).0;
                            taken.push((a, b, key.to_string(), line));
                        }
                    }
                    let patch = self.patch(v, &kpath);
                    // (With an invalid `voices`, already reported, indices are unchecked.)
                    if let (Some((a, b)), Some(p)) = (range, patch) {
                        let last = (b as usize).min(chosen.len() - 1);
                        for slot in chosen.iter_mut().take(last + 1).skip(a as usize) {
                            *slot = Some(p.clone());
                        }
                    }
                }
            }
        }
        chosen
            .into_iter()
            .enumerate()
            .map(|(v, p)| {
                p.or_else(|| fallback.clone()).unwrap_or_else(|| {
                    Patch::builtin(default_patch_name(v as u32)).expect("shipped patch")
                })
            })
            .collect()
    }

    /// A patch value: a built-in name or a patch file (read and validated; its problems are
    /// reported here, each naming the patch file's own line).
    pub(super) fn patch(&mut self, v: &Val<'_>, path: &str) -> Option<Patch> {
        let names = builtin_names();
        let expected = format!(
            "a patch: a built-in name ({}) or a path to a patch file ending in `.toml`",
            list(&names)
        );
        let DeValue::String(s) = v.get_ref() else {
            self.type_err(v, path, &expected);
            return None;
        };
        match PatchRef::classify(s) {
            PatchRef::Builtin(name) => {
                let found = Patch::builtin(name);
                if found.is_none() {
                    let hint = did_you_mean(name, &names);
                    let msg = if name.is_empty() {
                        format!("expected {expected}, found an empty string")
                    } else {
                        format!(
                            "unknown patch `{name}`{hint} (built-in patches: {}; a patch file is a path ending in `.toml`)",
                            list(&names)
                        )
                    };
                    self.err(v.span(), path, msg);
                }
                found
            }
            PatchRef::File(rel) => {
                let full = self.dir.join(rel);
                if !self.referenced.contains(&full) {
                    self.referenced.push(full.clone());
                }
                if let Some(known) = self.patch_files.get(&full) {
                    let known = known.clone();
                    if known.is_none() {
                        self.err(
                            v.span(),
                            path,
                            format!(
                                "patch file `{}` is invalid (reported above)",
                                full.display()
                            ),
                        );
                    }
                    return known;
                }
                let shown = full.display().to_string();
                let loaded = match std::fs::read_to_string(&full) {
                    Err(e) => {
                        let msg = if e.kind() == std::io::ErrorKind::NotFound {
                            format!(
                                "patch file `{shown}` not found (a relative path starts at the mapping file's folder; built-in patches: {})",
                                list(&names)
                            )
                        } else {
                            format!("cannot read the patch file `{shown}`: {e}")
                        };
                        self.err(v.span(), path, msg);
                        None
                    }
                    Ok(text) => match Patch::parse(&text, &shown) {
                        Ok(p) => Some(p),
                        Err(diags) => {
                            for d in diags.iter() {
                                self.err(v.span(), path, format!("in patch file {d}"));
                            }
                            None
                        }
                    },
                };
                self.patch_files.insert(full, loaded.clone());
                loaded
            }
        }
    }

    pub(super) fn channel(&mut self, v: Option<&Val<'_>>, path: &str, ok: &mut bool) -> Option<u8> {
        let v = v?;
        let c = self.integer(v, path, 1, 16, "a MIDI channel 1-16");
        if c.is_none() {
            *ok = false;
        }
        c.map(|c| c as u8)
    }
}
