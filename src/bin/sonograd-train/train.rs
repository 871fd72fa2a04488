//! `sonograd train`: the built-in trainer with the event thread behind it.

use std::time::Instant;

use anyhow::Result;

use sonograd::event::EndReason;
use sonograd::pipeline::queue::{event_queue, DEFAULT_CAPACITY};
use sonograd::pipeline::summary::RunSummary;
use sonograd::route::clock::PlaybackClock;
use sonograd::source::step_pace::{PacedSink, StepPacer};
use sonograd_trainer::steer::{Steer, SteerCommand, Steering};
use sonograd_trainer::{TrainConfig, Trainer};

use sonograd::control::Applied;
use sonograd::mapping::controls::ControlTarget;

use crate::args::TrainArgs;
use crate::cli::{
    fail_on_errors, load_mapping, pipeline, render, report_live, start_controls, EventOutputArgs,
    STOP,
};

/// The trainer's side of the controls: changes from the hub, as trainer commands. Paced, it
/// also holds each step to its time, taking the controls that arrive meanwhile, so a change
/// applies to the very next step.
struct FromControls {
    changes: crossbeam_channel::Receiver<Applied>,
    pace: Option<StepPacer>,
    /// The step whose turn is awaited (counted by the trainer's polls: a `None` lets it step).
    step: u64,
}

impl Steering for FromControls {
    fn next(&mut self, wait: Option<std::time::Duration>) -> Option<SteerCommand> {
        let change = match (wait, self.pace.as_mut()) {
            (Some(w), _) => self.changes.recv_timeout(w).ok(),
            (None, Some(pace)) => {
                let due = pace.due(self.step);
                let left = due.saturating_duration_since(std::time::Instant::now());
                self.changes.recv_timeout(left).ok()
            }
            (None, None) => self.changes.try_recv().ok(),
        };
        match change {
            Some(c) => Some(command(c)),
            None => {
                if wait.is_none() {
                    self.step += 1;
                }
                None
            }
        }
    }
}

/// What a control change asks of the trainer, and what its event says.
fn command(change: Applied) -> SteerCommand {
    let v = change.value;
    let steer = match &change.def.target {
        ControlTarget::Lr => Steer::Lr(v),
        ControlTarget::LrScale => Steer::LrScale(v),
        ControlTarget::Momentum => Steer::Momentum(v),
        ControlTarget::WeightDecay => Steer::WeightDecay(v),
        ControlTarget::Pause => Steer::Pause(v >= 0.5),
        ControlTarget::Resume => Steer::Pause(false),
        ControlTarget::Stop => Steer::Stop,
        ControlTarget::Checkpoint { file } => Steer::Checkpoint(file.clone()),
        _ => Steer::Note,
    };
    SteerCommand {
        steer,
        control: change.def.name.clone(),
        source: change.source,
        target: change.def.target.event_name().into(),
        value: v,
    }
}

/// What a finished `train` reports.
pub struct TrainOutcome {
    pub reason: EndReason,
    pub summary: RunSummary,
}

/// Trains with the given config and output flags; `paced_step_ms` holds each step to that
/// many milliseconds.
pub fn train(
    cfg: TrainConfig,
    output: &EventOutputArgs,
    unmeasured: bool,
    paced_step_ms: Option<f64>,
) -> Result<TrainOutcome> {
    // The mapping is validated before anything starts.
    let mapping = load_mapping(output)?;
    let mut trainer = Trainer::new(cfg)?;
    let started = Instant::now();
    if unmeasured {
        let reason = trainer.run(None, &STOP)?;
        if !output.quiet {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "{} steps in {secs:.2} s ({:.0} steps/s), unmonitored",
                trainer.steps_done(),
                trainer.steps_done() as f64 / secs
            );
        }
        return Ok(TrainOutcome {
            reason,
            summary: RunSummary::default(),
        });
    }
    let (tx, rx, _stats) = event_queue(DEFAULT_CAPACITY);
    // Paced: the step clock, as a replay at the same pace; live: the trainer's own stamps.
    let clock = match paced_step_ms {
        Some(ms) if ms > 0.0 => PlaybackClock::Steps(ms / 1000.0),
        _ => PlaybackClock::Recorded(1.0),
    };
    // A live run: the detector hears the clock and can say `stall`.
    let builder =
        pipeline::builder(output, mapping.clone(), trainer.planned_steps(), clock)?.live_stream();
    // Controls: the hub's thread hands every change over a channel; the trainer takes them
    // between steps.
    let (control_tx, control_rx) = crossbeam_channel::bounded::<Applied>(1024);
    let hub = start_controls(output, &mapping, Box::new(control_tx))?;
    let running = pipeline::build(builder, output)?.spawn(rx);
    let mut tx = tx;
    let mut steering = FromControls {
        changes: control_rx,
        pace: paced_step_ms.map(StepPacer::new),
        step: 0,
    };
    let result = match (paced_step_ms, hub.is_some()) {
        // The controls hold the pace (see `FromControls`).
        (_, true) => trainer.run_steered(Some(&mut tx), &STOP, Some(&mut steering)),
        (Some(ms), false) => trainer.run(Some(&mut PacedSink::new(&mut tx, ms)), &STOP),
        (None, false) => trainer.run(Some(&mut tx), &STOP),
    };
    tx.close();
    let hub_report = hub.map(|h| h.finish());
    let mut report = running.finish();
    let reason = result?;
    let mut summary = std::mem::take(&mut report.summary);
    summary.recording = output.record.clone();
    if !output.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprint!("{summary}");
        eprintln!(
            "  {} steps in {secs:.2} s ({:.0} steps/s)",
            trainer.steps_done(),
            trainer.steps_done() as f64 / secs
        );
        if let Some((path, events)) = &report.recorded {
            eprintln!("  recorded {events} events to {}", path.display());
        }
        if let Some(h) = &hub_report {
            eprintln!("  {h}");
        }
    }
    report_live(&report.synth, output);
    fail_on_errors(&report)?;
    Ok(TrainOutcome { reason, summary })
}

pub fn run(args: &TrainArgs) -> Result<EndReason> {
    let cfg = args.config()?;
    let opts = args.audio.options()?;
    let paced = args.paced.then_some(opts.step_ms);
    if args.paced && args.unmeasured {
        anyhow::bail!("--paced holds the monitored events to a clock: drop --unmeasured");
    }
    let Some(wav) = &args.wav else {
        return Ok(train(cfg, &args.output, args.unmeasured, paced)?.reason);
    };
    if args.unmeasured {
        anyhow::bail!("--wav needs the run's events: drop --unmeasured");
    }
    // Render from a recording: the one asked for, or a temporary one beside the WAV.
    let mut output = args.output.clone();
    let temporary = output.record.is_none();
    let recording = output
        .record
        .get_or_insert_with(|| wav.with_extension("events.jsonl"))
        .clone();
    // Render mode: the file is the sound, so nothing plays live.
    output.no_audio = true;
    let outcome = train(cfg, &output, false, paced);
    let mapping = load_mapping(&output)?;
    let rendered = render::render_input(
        &sonograd::source::replay_paced::ReplayInput::JsonLines(recording.clone()),
        &mapping,
        &opts,
        Some(wav),
        Default::default(),
        output.quiet,
    );
    if temporary {
        let _ = std::fs::remove_file(&recording);
    }
    let reason = outcome?.reason;
    rendered?;
    Ok(reason)
}
