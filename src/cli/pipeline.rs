//! The output flags every event command shares, turned into a [`Pipeline`] builder.

use std::io::IsTerminal;

use anyhow::Result;

use sonograd::mapping::Mapping;
use sonograd::pipeline::print::PrintFormat;
use sonograd::pipeline::{Builder, Pipeline};
use sonograd::route::clock::PlaybackClock;

use super::EventOutputArgs;

/// The pipeline the output flags ask for: routing with `mapping` on `clock`, the detector as
/// the mapping's `[diagnose]` table says (none with `--no-diagnose`), the sinks the flags
/// name, and a progress bar for a run of `steps` steps on a terminal (0: none).
pub fn builder(
    output: &EventOutputArgs,
    mapping: Mapping,
    steps: u64,
    clock: PlaybackClock,
) -> Result<Builder> {
    let watch = output.mapping.is_some() && !output.no_reload;
    let path = output
        .mapping
        .clone()
        .unwrap_or_else(|| "config/default.toml".into());
    let mut b = Pipeline::builder(mapping)
        .mapping_file(path, watch)
        .outputs(output.output_settings()?)
        .clock(clock)
        .monitor_all(output.monitor)
        .diagnose(!output.no_diagnose);
    if let Some(path) = &output.record {
        b = b.record(path);
    }
    if output.json {
        b = b.print(PrintFormat::Json);
    } else if output.print {
        b = b.print(PrintFormat::Text);
    }
    if steps > 0 && !output.quiet && std::io::stderr().is_terminal() {
        b = b.progress(steps);
    }
    Ok(b)
}

/// Builds the pipeline, and says with `--verbose` which audio device the live synth plays on.
pub fn build(builder: Builder, output: &EventOutputArgs) -> Result<Pipeline> {
    let pipeline = builder.build()?;
    if let (Some(info), true) = (pipeline.playing(), output.verbose) {
        eprintln!(
            "audio: {} at {} Hz, buffer {} frames requested, {} granted",
            info.device,
            info.sample_rate,
            info.requested_frames,
            info.granted_frames
                .map_or_else(|| "size not reported".to_string(), |f| f.to_string())
        );
    }
    Ok(pipeline)
}
