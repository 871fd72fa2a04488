//! MIDI learn: wait for the next thing a controller sends and write the `[[control]]` that
//! listens to it, so no one types CC numbers by hand.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::mapping::controls::Controls;
use crate::mapping::parse::RECALL_ADDRESS;

use super::input::{decode_midi, decode_osc, Input};
use super::ControlError;

/// Waits up to `timeout` for the first CC, note-on, program change or OSC message on the
/// inputs `controls` names (or `osc`). `None` when nothing came.
pub fn next_input(
    controls: &Controls,
    osc: Option<SocketAddr>,
    timeout: Duration,
    mut listening: impl FnMut(&str),
) -> Result<Option<Input>, ControlError> {
    let (tx, rx) = crossbeam_channel::bounded::<Input>(256);
    let mut _midi = None;
    if let Some(port) = &controls.midi {
        let tx = tx.clone();
        let (conn, name) = super::midi_in::connect(port, move |bytes| {
            if let Ok(Some(input)) = decode_midi(bytes) {
                let _ = tx.try_send(input);
            }
        })?;
        listening(&format!("MIDI in on {name}"));
        _midi = Some(conn);
    }
    let socket = match osc.or(controls.osc) {
        Some(addr) => {
            let s = UdpSocket::bind(addr).map_err(|source| ControlError::Bind { addr, source })?;
            s.set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|source| ControlError::Bind { addr, source })?;
            if let Ok(a) = s.local_addr() {
                listening(&format!("OSC on {a}"));
            }
            Some(s)
        }
        None => None,
    };
    if socket.is_none() && _midi.is_none() {
        return Ok(None);
    }
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_536];
    let mut osc_in = Vec::new();
    while Instant::now() < deadline {
        if let Ok(input) = rx.try_recv() {
            if is_learnable(&input) {
                return Ok(Some(input));
            }
        }
        match &socket {
            Some(s) => {
                if let Ok(n) = s.recv(&mut buf) {
                    osc_in.clear();
                    if decode_osc(&buf[..n], &mut osc_in).is_ok() {
                        if let Some(i) = osc_in.drain(..).find(is_learnable) {
                            return Ok(Some(i));
                        }
                    }
                }
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Ok(None)
}

/// Releases (note-off) and the recall address teach nothing.
fn is_learnable(input: &Input) -> bool {
    match input {
        Input::Note { velocity, .. } => *velocity > 0,
        Input::Osc { addr, .. } => addr != RECALL_ADDRESS,
        _ => true,
    }
}

/// The `[[control]]` table for `input` driving `target` (with `extra` keys, e.g. a route),
/// as TOML text to append to a mapping.
pub fn entry(input: &Input, target: &str, extra: &[(&str, String)]) -> String {
    let mut out = String::from("\n[[control]]\n");
    match input {
        Input::Cc { channel, cc, .. } => out += &format!("cc = {cc}\nchannel = {channel}\n"),
        Input::Note { channel, note, .. } => {
            out += &format!("note = {note}\nchannel = {channel}\n")
        }
        Input::Program { channel, .. } => out += &format!("program = true\nchannel = {channel}\n"),
        Input::Osc { addr, .. } => out += &format!("osc = {addr:?}\n"),
    }
    out += &format!("target = {target:?}\n");
    let buttons = ["pause", "mute", "solo"];
    if matches!(input, Input::Note { .. }) && buttons.contains(&target) {
        out += "mode = \"toggle\"\n";
    }
    for (k, v) in extra {
        out += &format!("{k} = {v:?}\n");
    }
    out
}
