//! The MIDI input port of the controls, through midir: an existing port by name or position,
//! or a virtual port (ALSA or, with the crate feature `jack`, JACK).

use midir::{MidiInput, MidiInputConnection};

use crate::mapping::schema::MidiPort;
use crate::output::midi::CLIENT_NAME;

use super::ControlError;

/// Connects to `port`; `on_message` gets every message's bytes on midir's thread. Returns
/// the connection (dropping it disconnects) and the port's name.
pub(crate) fn connect(
    port: &MidiPort,
    mut on_message: impl FnMut(&[u8]) + Send + 'static,
) -> Result<(MidiInputConnection<()>, String), ControlError> {
    let input = MidiInput::new(CLIENT_NAME).map_err(|e| ControlError::Midi(e.to_string()))?;
    let callback = move |_stamp: u64, bytes: &[u8], _: &mut ()| on_message(bytes);
    let ports = input.ports();
    let names: Vec<String> = ports
        .iter()
        .map(|p| input.port_name(p).unwrap_or_default())
        .collect();
    let index = match port {
        MidiPort::Virtual(name) => return connect_virtual(input, name, callback),
        MidiPort::Index(i) => Some(*i as usize).filter(|i| *i < ports.len()),
        MidiPort::NameContains(s) => names.iter().position(|n| n.contains(s.as_str())),
    };
    let Some(i) = index else {
        return Err(ControlError::NoMidiPort {
            wanted: match port {
                MidiPort::Index(i) => format!("#{i}"),
                MidiPort::NameContains(s) => format!("containing {s:?}"),
                MidiPort::Virtual(s) => s.clone(),
            },
            available: names,
        });
    };
    let name = names[i].clone();
    let conn = input
        .connect(&ports[i], "sonograd-controls", callback, ())
        .map_err(|e| ControlError::Midi(format!("cannot open MIDI input {name}: {e}")))?;
    Ok((conn, name))
}

#[cfg(unix)]
fn connect_virtual(
    input: MidiInput,
    name: &str,
    callback: impl FnMut(u64, &[u8], &mut ()) + Send + 'static,
) -> Result<(MidiInputConnection<()>, String), ControlError> {
    use midir::os::unix::VirtualInput;
    input
        .create_virtual(name, callback, ())
        .map(|c| (c, format!("virtual {name}")))
        .map_err(|e| ControlError::Midi(format!("cannot create virtual MIDI input {name}: {e}")))
}

#[cfg(not(unix))]
fn connect_virtual(
    _input: MidiInput,
    name: &str,
    _callback: impl FnMut(u64, &[u8], &mut ()) + Send + 'static,
) -> Result<(MidiInputConnection<()>, String), ControlError> {
    Err(ControlError::Midi(format!(
        "virtual MIDI input {name}: virtual ports need ALSA, JACK or CoreMIDI"
    )))
}
