//! `sonograd learn`: MIDI (and OSC) learn into a mapping file.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use sonograd::control::learn::{entry, next_input};

#[derive(Args, Debug, Clone)]
pub struct LearnArgs {
    /// The mapping file to add the control to (its comments and layout stay as they are).
    pub mapping: PathBuf,
    /// What the control drives: lr, lr_scale, momentum, weight_decay, pause, resume, stop,
    /// checkpoint, mark, volume, mute, solo, mapping_next, mapping_prev.
    pub target: String,
    /// The route a `mute` or `solo` acts on.
    #[arg(long)]
    pub route: Option<String>,
    /// The file a `checkpoint` saves to (`{step}` is filled in).
    #[arg(long)]
    pub file: Option<String>,
    /// The control's name (default: the target's).
    #[arg(long)]
    pub name: Option<String>,
    /// Listen for OSC on this address (PORT or IP:PORT) instead of `[controls] osc`.
    #[arg(long, value_name = "ADDR")]
    pub control_osc: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub timeout: f64,
}

pub fn run(args: &LearnArgs) -> Result<()> {
    let mapping = sonograd::mapping::check(&args.mapping)
        .map_err(|diags| anyhow::anyhow!("invalid mapping:\n{diags}"))?;
    let osc = args
        .control_osc
        .as_deref()
        .map(|v| sonograd::source::listen::parse_listen_addr("--control-osc", v))
        .transpose()?;
    if osc.is_none() && mapping.controls.osc.is_none() && mapping.controls.midi.is_none() {
        bail!(
            "{}: nothing to learn from: give --control-osc PORT, or [controls] osc or midi in the mapping",
            args.mapping.display()
        );
    }
    if !(args.timeout > 0.0 && args.timeout <= 3600.0) {
        bail!(
            "--timeout must be between 0 and 3600 seconds, got {}",
            args.timeout
        );
    }
    let mut extra = Vec::new();
    if let Some(n) = &args.name {
        extra.push(("name", n.clone()));
    }
    if let Some(r) = &args.route {
        extra.push(("route", r.clone()));
    }
    if let Some(f) = &args.file {
        extra.push(("file", f.clone()));
    }
    let input = next_input(
        &mapping.controls,
        osc,
        Duration::from_secs_f64(args.timeout),
        |at| eprintln!("learn: move a control for `{}` ({at})", args.target),
    )?;
    let Some(input) = input else {
        bail!(
            "learn: nothing arrived in {} s; the mapping is unchanged",
            args.timeout
        );
    };
    let before = std::fs::read_to_string(&args.mapping)
        .with_context(|| format!("cannot read {}", args.mapping.display()))?;
    let mut after = before.clone();
    if !after.ends_with('\n') {
        after.push('\n');
    }
    let block = entry(&input, &args.target, &extra);
    after += &block;
    // Only a mapping that still validates is written.
    let name = args.mapping.display().to_string();
    sonograd::mapping::parse_str(&after, &name).map_err(|diags| {
        anyhow::anyhow!(
            "learn: the new control does not fit the mapping, which is unchanged:\n{diags}"
        )
    })?;
    std::fs::write(&args.mapping, after)
        .with_context(|| format!("cannot write {}", args.mapping.display()))?;
    println!("{}: added{block}", args.mapping.display());
    Ok(())
}
