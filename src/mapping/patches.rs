//! Which patch each voice of a `synth` output plays: the rules behind the `patch` and
//! `patches` keys (the parser applies them and reports what breaks them).
//!
//! For voice `v` the first of these that applies wins:
//! 1. the `patches` entry whose voice or range (`"13"`, `"0-3"`) holds `v` (entries must not
//!    overlap),
//! 2. `patch`,
//! 3. [`default_patch_name`]: 13 the explosion warning, 14 the non-finite alarm, 15 the loss
//!    drone, every other voice the clean sine (what `config/default.toml` used before it named its patches).
//!
//! A patch value is a built-in name ([`crate::synth::patch::Patch::builtin`]) unless it ends in
//! `.toml` or contains a `/` (or `\`): then it is a patch file, relative to the mapping file's
//! folder ([`PatchRef`]).

use crate::synth::patch::BUILTIN;

/// The patch voice `voice` plays when the mapping names none for it.
pub fn default_patch_name(voice: u32) -> &'static str {
    match voice {
        13 => "explosion",
        14 => "alarm",
        15 => "drone",
        _ => "sine",
    }
}

/// The names of the built-in patches (`sine`, the four `tone-*` layer voices, `pluck`,
/// `drone`, `alarm`, `explosion`).
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN
        .iter()
        .filter_map(|(file, _)| file.strip_suffix(".toml"))
        .collect()
}

/// What a patch value names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchRef<'a> {
    /// A built-in patch by name.
    Builtin(&'a str),
    /// A patch file, as written (relative paths start at the mapping file's folder).
    File(&'a str),
}

impl<'a> PatchRef<'a> {
    /// Reads a patch value: a file when it ends in `.toml` or contains a path separator,
    /// otherwise a built-in name.
    pub fn classify(value: &'a str) -> PatchRef<'a> {
        if value.ends_with(".toml") || value.contains('/') || value.contains('\\') {
            PatchRef::File(value)
        } else {
            PatchRef::Builtin(value)
        }
    }
}

/// A `patches` key: one voice (`"13"`) or an inclusive range (`"0-3"`), as `(first, last)`.
/// The error says what was expected.
pub fn voice_range(key: &str) -> Result<(u32, u32), String> {
    let number = |s: &str| -> Option<u32> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let bad = || {
        format!(
            "expected a voice index like \"13\" or an inclusive range like \"0-3\", found {key:?}"
        )
    };
    match key.split_once('-') {
        None => number(key).map(|v| (v, v)).ok_or_else(bad),
        Some((a, b)) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => Ok((a, b)),
            (Some(a), Some(b)) => Err(format!(
                "the range \"{a}-{b}\" goes backwards: write the lower voice first (\"{b}-{a}\")"
            )),
            _ => Err(bad()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_keys() {
        assert_eq!(voice_range("13"), Ok((13, 13)));
        assert_eq!(voice_range("0-3"), Ok((0, 3)));
        assert_eq!(voice_range(" 2 - 2 "), Ok((2, 2)));
        for bad in [
            "",
            "-",
            "a",
            "1-",
            "-3",
            "1-2-3",
            "+1",
            "1.5",
            "x-3",
            "99999999999",
        ] {
            let e = voice_range(bad).unwrap_err();
            assert!(e.contains("expected a voice index"), "{bad:?}: {e}");
        }
        assert!(voice_range("5-2").unwrap_err().contains("backwards"));
    }

    #[test]
    fn names_and_paths() {
        assert_eq!(PatchRef::classify("pluck"), PatchRef::Builtin("pluck"));
        assert_eq!(PatchRef::classify("plukc"), PatchRef::Builtin("plukc"));
        assert_eq!(
            PatchRef::classify("pluck.toml"),
            PatchRef::File("pluck.toml")
        );
        assert_eq!(PatchRef::classify("p/bass"), PatchRef::File("p/bass"));
        assert_eq!(
            builtin_names(),
            [
                "sine",
                "tone-triangle",
                "tone-square",
                "tone-fm",
                "tone-sine",
                "pluck",
                "drone",
                "alarm",
                "explosion"
            ]
        );
        assert_eq!(default_patch_name(13), "explosion");
        assert_eq!(default_patch_name(14), "alarm");
        assert_eq!(default_patch_name(15), "drone");
        assert_eq!(default_patch_name(0), "sine");
        assert_eq!(default_patch_name(16), "sine");
    }
}
