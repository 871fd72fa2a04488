//! Command-line arguments: parsed raw by clap, then validated into ready objects; and [`run`],
//! the body that both binaries share.
//!
//! `sonograd` and its companion `sonograd-train` compile this same module. Only the companion
//! runs `train` and `demo` (it links libtorch); `sonograd` parses their arguments and hands
//! them over, so no other command loads libtorch.

pub mod check;
pub mod learn;
pub mod listen;
pub mod pipeline;
pub mod render;
pub mod replay;
pub mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

/// How a binary runs `train` and `demo`: `Ok(true)` when the run was interrupted (exit 130).
pub type RunTrainer = fn(&Command) -> anyhow::Result<bool>;

/// Parses the arguments, runs the command and maps the outcome to an exit code: 0 fine, 2 bad
/// input or failure, 130 interrupted. `train` and `demo` go to `run_trainer` with their
/// arguments unparsed.
pub fn run(run_trainer: RunTrainer) -> ExitCode {
    let cli = Cli::parse();
    install_stop_handler();
    exit_code(match &cli.command {
        Command::Train(_) | Command::Demo(_) => run_trainer(&cli.command),
        Command::Replay(args) => replay::run(args).map(|()| false),
        Command::Listen(args) => listen::run(args).map(|()| false),
        Command::Ports => ports().map(|()| false),
        Command::Render(args) => render::run(args).map(|()| false),
        Command::Report(args) => report::run(args).map(|()| false),
        Command::Devices => render::devices().map(|()| false),
        Command::Learn(args) => learn::run(args).map(|()| false),
        Command::Check(args) => match check::run(args) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(2),
            Err(e) => Err(e),
        },
    })
}

/// The exit code for a command's outcome (`Ok(true)`: interrupted); errors are printed.
pub fn exit_code(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(130),
        // A closed pipe (`sonograd replay r.jsonl --monitor | head`) is not an error.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, like `{e:#}`, but without repeating a cause that
/// an outer message already quotes (thiserror's `"{0}"` with `#[from]`, or `"{path}: {source}"`,
/// show their source and also report it as the cause).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Set by Ctrl-C or SIGTERM; sources check it between steps.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C / SIGTERM handler: the first signal asks for a clean stop (outputs are
/// flushed and closed), a second one exits at once, after ending every sounding MIDI note.
pub fn install_stop_handler() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            sonograd::output::midi_sched::stop_all_notes(std::time::Duration::from_millis(300));
            std::process::exit(130);
        }
    });
}

#[derive(Parser, Debug)]
#[command(
    name = "sonograd",
    version,
    about = "Hear neural-network training",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a model and emit its events (gradient norms, loss, lr, NaN/Inf alarms).
    #[command(disable_help_flag = true)]
    Train(HandedOver),
    /// Receive a foreign training run's events (JSON lines on stdin or UDP, OSC over UDP) and route them.
    Listen(listen::ListenArgs),
    /// Read a JSON-lines recording (or a CSV export) back, at full speed or paced.
    Replay(replay::ReplayArgs),
    /// List MIDI output ports.
    Ports,
    /// Render a recording to a WAV file with the built-in synth.
    Render(render::RenderArgs),
    /// Write a report folder: norms and spectrogram pictures, the audio, and a page that plays it.
    Report(report::ReportArgs),
    /// List audio hosts and output devices.
    Devices,
    /// Validate mapping files: every problem with file, line, column and a suggestion.
    Check(check::CheckArgs),
    /// MIDI learn: wait for the next CC, note or OSC message and add a control for it to a mapping.
    Learn(learn::LearnArgs),
    /// The seed's demo: SGD at lr 0.01, 0.1, 1.0 (batch 20), lr 1.0 at batch 256, and Adam 0.01.
    #[command(disable_help_flag = true)]
    Demo(HandedOver),
}

/// The arguments of `train` or `demo`, taken as they are: the trainer parses them (see
/// [`run`]).
#[derive(Args, Debug, Clone)]
pub struct HandedOver {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<std::ffi::OsString>,
}

/// Where and how events are shown or kept; shared by the commands.
#[derive(Args, Debug, Clone)]
pub struct EventOutputArgs {
    /// Write every event to this JSON-lines file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Print every event to stdout as a readable line.
    #[arg(long, conflicts_with = "json")]
    pub print: bool,
    /// Print every event to stdout as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Mapping file that routes events to outputs (default: the built-in config/default.toml).
    #[arg(long, value_name = "FILE")]
    pub mapping: Option<PathBuf>,
    /// Take the mapping's controls over OSC on this address (PORT or IP:PORT, 127.0.0.1
    /// unless given; overrides `[controls] osc`). See docs/controls.md.
    #[arg(long, value_name = "ADDR")]
    pub control_osc: Option<String>,
    /// Print every routed message as a readable line on stdout (a dry run of the mapping).
    #[arg(long)]
    pub monitor: bool,
    /// Do not reload the mapping file when it changes.
    #[arg(long)]
    pub no_reload: bool,
    /// Also write the MIDI messages to this Standard MIDI File (a track per layer).
    #[arg(long, value_name = "FILE")]
    pub midi_file: Option<PathBuf>,
    /// Tempo of --midi-file, quarter notes per minute.
    #[arg(long, default_value_t = 120.0, value_name = "BPM")]
    pub tempo: f64,
    /// Training steps per quarter note in --midi-file.
    #[arg(long, default_value_t = 4.0, value_name = "N")]
    pub steps_per_beat: f64,
    /// Also write an scsynth NRT score (render: scsynth -N FILE _ out.wav 48000 WAV int16 -o 2).
    #[arg(long, value_name = "FILE")]
    pub osc_score: Option<PathBuf>,
    /// Seconds of score time per training step in --osc-score.
    #[arg(long, default_value_t = 0.1, value_name = "SECS")]
    pub score_step_secs: f64,
    /// Play every midi output on a new virtual MIDI port of this name.
    #[arg(long, value_name = "NAME")]
    pub midi_virtual: Option<String>,
    /// Most MIDI messages a second per port (default 1000, safe for DIN MIDI).
    #[arg(long, value_name = "N")]
    pub midi_rate: Option<u32>,
    /// Play synth outputs on this scsynth (HOST:PORT) instead of the built-in synth.
    #[arg(long, value_name = "HOST:PORT")]
    pub scsynth: Option<String>,
    /// Do not play synth outputs on the audio device (also: SONOGRAD_NO_AUDIO=1).
    #[arg(long)]
    pub no_audio: bool,
    /// Audio device for the built-in synth: an id or part of a name from `sonograd devices`
    /// (default: the first host's default output).
    #[arg(long, value_name = "DEVICE")]
    pub audio_device: Option<String>,
    /// Audio buffer size to request, frames (the device may grant another; see --verbose).
    #[arg(long, default_value_t = sonograd::synth::live::DEFAULT_BUFFER_FRAMES, value_name = "FRAMES")]
    pub buffer_frames: u32,
    /// Also print the audio device, sample rate and buffer sizes, and the hand-over latency.
    #[arg(long, short)]
    pub verbose: bool,
    /// Do not run the detector (no `diagnosis` events: exploding, vanishing, dead layers...).
    #[arg(long)]
    pub no_diagnose: bool,
}

/// Whether an environment flag such as `SONOGRAD_NO_AUDIO` is set to something other than
/// empty, `0` or `false`.
fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

impl EventOutputArgs {
    /// The validated output settings.
    pub fn output_settings(&self) -> anyhow::Result<sonograd::pipeline::dispatch::OutputSettings> {
        use sonograd::output::midi_file::MidiFileConfig;
        if !(self.tempo.is_finite() && self.tempo > 0.0) {
            anyhow::bail!("--tempo must be a positive number, got {}", self.tempo);
        }
        if !(self.steps_per_beat.is_finite() && self.steps_per_beat > 0.0) {
            anyhow::bail!(
                "--steps-per-beat must be a positive number, got {}",
                self.steps_per_beat
            );
        }
        if !(self.score_step_secs.is_finite() && self.score_step_secs > 0.0) {
            anyhow::bail!(
                "--score-step-secs must be a positive number, got {}",
                self.score_step_secs
            );
        }
        if self.midi_rate == Some(0) {
            anyhow::bail!("--midi-rate must be at least 1");
        }
        let scsynth = match &self.scsynth {
            None => None,
            Some(text) => {
                let (host, port) = text
                    .rsplit_once(':')
                    .and_then(|(h, p)| {
                        p.parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                            .map(|p| (h.to_string(), p))
                    })
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--scsynth {text}: expected HOST:PORT, e.g. 127.0.0.1:57110"
                        )
                    })?;
                Some((host, port))
            }
        };
        if self.buffer_frames == 0 || self.buffer_frames > 65_536 {
            anyhow::bail!(
                "--buffer-frames must be between 1 and 65536, got {}",
                self.buffer_frames
            );
        }
        let live = (!self.no_audio && !env_flag("SONOGRAD_NO_AUDIO")).then(|| {
            sonograd::synth::live::LiveOptions {
                device: self.audio_device.clone(),
                buffer_frames: self.buffer_frames,
                hide_backend_messages: !self.verbose,
                ..Default::default()
            }
        });
        Ok(sonograd::pipeline::dispatch::OutputSettings {
            live,
            clock: Default::default(),
            midi_virtual: self.midi_virtual.clone(),
            midi_rate: self.midi_rate,
            scsynth,
            midi_file: self.midi_file.clone().map(|p| {
                (
                    p,
                    MidiFileConfig {
                        bpm: self.tempo,
                        steps_per_beat: self.steps_per_beat,
                        ..MidiFileConfig::default()
                    },
                )
            }),
            osc_score: self.osc_score.clone().map(|p| (p, self.score_step_secs)),
            max_gap_steps: None,
            files_only: false,
        })
    }
}

/// Prints what the live synth did (underruns always; device and latency with `--verbose`).
pub fn report_live(reports: &[sonograd::synth::live::LiveReport], output: &EventOutputArgs) {
    for r in reports {
        if output.quiet && r.underruns == 0 && r.dropped == 0 {
            continue;
        }
        eprint!(
            "  audio: {} callbacks on {}, {} underruns",
            r.callbacks, r.device, r.underruns
        );
        if r.dropped > 0 {
            eprint!(", {} of {} controls dropped (ring full)", r.dropped, r.sent);
        }
        if output.verbose {
            if let Some((p50, p99, max)) = r.latency_ms {
                eprint!("; hand-over latency p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
            }
        }
        eprintln!();
    }
}

/// Fails the command when a sink lost data (a recording, a MIDI file or a score that could
/// not be written, ...): every problem is printed, the first is the error.
pub fn fail_on_errors(report: &sonograd::pipeline::Report) -> anyhow::Result<()> {
    match report.errors.as_slice() {
        [] => Ok(()),
        [first, rest @ ..] => {
            for e in rest {
                eprintln!("error: {e}");
            }
            anyhow::bail!("{first}")
        }
    }
}

/// The built-in default mapping, used when `--mapping` is not given.
pub const DEFAULT_MAPPING: &str = include_str!("../../config/default.toml");

/// Loads and validates the mapping the flags name; all problems in one error.
pub fn load_mapping(
    output: &EventOutputArgs,
) -> anyhow::Result<sonograd::mapping::schema::Mapping> {
    let result = match &output.mapping {
        Some(path) => sonograd::mapping::check(path),
        None => sonograd::mapping::parse_str(DEFAULT_MAPPING, "config/default.toml (built in)"),
    };
    result.map_err(|diags| anyhow::anyhow!("invalid mapping:\n{diags}"))
}

/// Starts the mapping's controls, when it declares any and an input is given (mapping or
/// `--control-osc`); every applied change goes to `apply`. Says on stderr where it listens.
pub fn start_controls(
    output: &EventOutputArgs,
    mapping: &sonograd::mapping::schema::Mapping,
    apply: Box<dyn sonograd::control::Apply>,
) -> anyhow::Result<Option<sonograd::control::ControlHub>> {
    let osc = output
        .control_osc
        .as_deref()
        .map(|v| sonograd::source::listen::parse_listen_addr("--control-osc", v))
        .transpose()?;
    let controls = &mapping.controls;
    if controls.list.is_empty() {
        if osc.is_some() {
            anyhow::bail!(
                "--control-osc: the mapping declares no [[control]] (see docs/controls.md)"
            );
        }
        return Ok(None);
    }
    if osc.is_none() && !controls.listens() {
        return Ok(None);
    }
    let hub = sonograd::control::ControlHub::start(controls, osc, apply)?;
    if let Some(addr) = hub.osc_addr() {
        eprintln!("controls: OSC on {addr}");
    }
    if let Some(port) = hub.midi_port() {
        eprintln!("controls: MIDI in on {port}");
    }
    Ok(Some(hub))
}

/// `sonograd ports`: the MIDI output ports, with their indices.
pub fn ports() -> anyhow::Result<()> {
    let ports = sonograd::output::midi::list_ports()?;
    if ports.is_empty() {
        println!("no MIDI output ports (create one with --midi-virtual NAME)");
    }
    for (i, name) in ports.iter().enumerate() {
        println!("{i}: {name}");
    }
    Ok(())
}

impl Default for EventOutputArgs {
    /// The flags' own defaults, as if none were given.
    fn default() -> Self {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            output: EventOutputArgs,
        }
        Wrapper::parse_from(["sonograd"]).output
    }
}
