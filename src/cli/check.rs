//! `sonograd check`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Mapping files to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Validates every file; `Ok(true)` when all are valid.
pub fn run(args: &CheckArgs) -> Result<bool> {
    let mut all_valid = true;
    for file in &args.files {
        match sonograd::mapping::check(file) {
            Ok(m) => {
                let controls = if m.controls.list.is_empty() {
                    String::new()
                } else {
                    format!(", {} controls", m.controls.list.len())
                };
                println!(
                    "{}: ok ({} outputs, {} routes{controls})",
                    file.display(),
                    m.outputs.len(),
                    m.routes.len()
                );
                print_controls(&m.controls);
            }
            Err(diags) => {
                all_valid = false;
                eprintln!("{diags}");
            }
        }
    }
    Ok(all_valid)
}

/// One line per control, and where controls come in.
fn print_controls(c: &sonograd::mapping::controls::Controls) {
    if c.list.is_empty() {
        return;
    }
    let mut inputs = Vec::new();
    if let Some(a) = c.osc {
        inputs.push(format!("OSC on {a}"));
    }
    if let Some(p) = &c.midi {
        use sonograd::mapping::schema::MidiPort;
        inputs.push(match p {
            MidiPort::NameContains(s) => format!("MIDI in from the port containing {s:?}"),
            MidiPort::Index(i) => format!("MIDI in from port #{i}"),
            MidiPort::Virtual(n) => format!("MIDI in on a virtual port {n:?}"),
        });
    }
    if inputs.is_empty() {
        inputs.push("none in the mapping (give --control-osc or [controls] osc/midi)".into());
    }
    println!("  controls in: {}", inputs.join(", "));
    for d in &c.list {
        let range = if d.target.is_trigger() {
            String::new()
        } else {
            format!(
                " {:?} [{}, {}] {:?}",
                d.mode, d.range[0], d.range[1], d.curve
            )
            .to_lowercase()
        };
        println!(
            "  control {:<14} {:<22} -> {}{range}",
            d.name,
            match d.source {
                sonograd::mapping::controls::ControlSource::Named =>
                    format!("osc:/sonograd/control/{}", d.name),
                ref s => s.to_string(),
            },
            d.target.event_name()
        );
    }
}
