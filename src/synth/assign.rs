//! Which patch each voice plays.
//!
//! Until mappings can name patches (see REPORT.md), [`default_patch_name`] assigns them the
//! way `config/default.toml` uses its voices: 13 the explosion warning, 14 the non-finite
//! alarm, 15 the loss drone, every other voice the clean sine.

use super::control::VoiceMap;
use super::patch::Patch;

/// The shipped patch for voice `voice` of a synth output (see the module docs).
pub fn default_patch_name(voice: u32) -> &'static str {
    match voice {
        13 => "explosion",
        14 => "alarm",
        15 => "drone",
        _ => "sine",
    }
}

/// Patches for every engine voice of `map`, with [`default_patch_name`] inside each output.
pub fn default_patches(map: &VoiceMap) -> Vec<Patch> {
    let mut out = Vec::with_capacity(map.total as usize);
    for (_, count) in map.outputs.iter().flatten() {
        for v in 0..*count {
            out.push(Patch::builtin(default_patch_name(v)).expect("shipped patch"));
        }
    }
    out
}
