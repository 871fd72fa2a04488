//! `sonograd listen`: route a foreign training run's events (JSON lines on stdin or UDP, OSC
//! over UDP, or TensorBoard event files as they grow) exactly as `train` routes its own.

use anyhow::Result;
use clap::Args;

use sonograd::pipeline::queue::{event_queue, DEFAULT_CAPACITY};
use sonograd::source::listen::{
    admit, default_addr, parse_listen_addr, ListenOptions, Listener, SenderFilter,
    DEFAULT_MAX_DATAGRAM, DEFAULT_OSC_PORT, DEFAULT_RECV_BUFFER, DEFAULT_UDP_PORT,
};

use sonograd::mapping::Mapping;
use sonograd::pipeline::Pipeline;
use sonograd::route::clock::PlaybackClock;

use super::{EventOutputArgs, STOP};

#[derive(Args, Debug, Clone)]
pub struct ListenArgs {
    /// JSON lines over UDP at ADDR (PORT or IP:PORT; default 127.0.0.1:9107).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub udp: Option<String>,
    /// OSC over UDP at ADDR (default 127.0.0.1:9108).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
    pub osc: Option<String>,
    /// JSON lines on stdin.
    #[arg(long)]
    pub stdin: bool,
    /// Follow the TensorBoard event files in DIR (and new runs under it) as a trainer writes them.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["udp", "osc", "stdin"])]
    pub tensorboard: Option<std::path::PathBuf>,
    /// With --tensorboard: tags to events, overriding the conventions, e.g. loss=train/objective.
    #[arg(long, value_name = "MAP", requires = "tensorboard")]
    pub tags: Option<String>,
    /// With --tensorboard: how often to look for new records, milliseconds.
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 200,
        requires = "tensorboard"
    )]
    pub poll_ms: u64,
    /// Route only these ranks (comma-separated); --record keeps all.
    #[arg(long = "only-rank", value_delimiter = ',', value_name = "N")]
    pub rank: Vec<u32>,
    /// Route only these runs (comma-separated); --record keeps all.
    #[arg(long = "only-run", value_delimiter = ',', value_name = "NAME")]
    pub runs: Vec<String>,
    /// Stop after this many run_end events (e.g. the number of ranks).
    #[arg(long, value_name = "N")]
    pub runs_ending: Option<u64>,
    /// Largest datagram accepted, bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_DATAGRAM)]
    pub max_datagram: usize,
    /// Receive buffer asked per UDP socket, bytes.
    #[arg(long, default_value_t = DEFAULT_RECV_BUFFER)]
    pub recv_buffer: usize,
    /// Most distinct layers, eval names, runs and ranks (each).
    #[arg(long, default_value_t = admit::DEFAULT_MAX_SERIES)]
    pub max_series: usize,
    /// Queue capacity in events.
    #[arg(long, default_value_t = DEFAULT_CAPACITY)]
    pub capacity: usize,
    #[command(flatten)]
    pub output: EventOutputArgs,
}

fn addr(flag: &str, value: &Option<String>, port: u16) -> Result<Option<std::net::SocketAddr>> {
    Ok(match value.as_deref() {
        None => None,
        Some("") => Some(default_addr(port)),
        Some(v) => Some(parse_listen_addr(flag, v)?),
    })
}

pub fn run(args: &ListenArgs) -> Result<()> {
    if let Some(dir) = &args.tensorboard {
        return follow_tensorboard(args, dir);
    }
    let mapping = super::load_mapping(&args.output)?;
    let opts = ListenOptions {
        stdin: args.stdin,
        udp_json: addr("--udp", &args.udp, DEFAULT_UDP_PORT)?,
        udp_osc: addr("--osc", &args.osc, DEFAULT_OSC_PORT)?,
        max_datagram: args.max_datagram,
        recv_buffer: args.recv_buffer,
        stop_after_run_ends: args.runs_ending,
        max_series: args.max_series,
        warnings: !args.output.quiet,
        ..ListenOptions::default()
    };
    let listener = Listener::bind(opts)?;
    for input in listener.inputs() {
        if input.addr.is_some_and(|a| !a.ip().is_loopback()) {
            eprintln!("note: {input} accepts events from other machines");
        }
        // Scripts and tests read this line for the port actually bound.
        eprintln!("listening: {input}");
    }
    // Controls: every applied change is an event in the stream, and a training control goes
    // on to the runs sending here.
    let forwarder = Forwarder {
        stream: listener.injector(),
        senders: listener.control_return(),
    };
    let hub = super::start_controls(&args.output, &mapping, Box::new(forwarder))?;
    let pipeline = pipeline(args, mapping)?;
    let (mut tx, rx, _stats) = event_queue(args.capacity);
    let running = pipeline.spawn(rx);
    let report = listener.run(&mut tx, &STOP);
    let hub_report = hub.map(|h| h.finish());
    tx.close();
    let consumed = running.finish();
    if let (Some(h), false) = (&hub_report, args.output.quiet) {
        eprintln!("  {h}");
    }
    if !args.output.quiet {
        eprint!("{report}");
        eprintln!("  routed {} events", consumed.events);
        let mut s = consumed.summary.clone();
        s.recording = args.output.record.clone();
        eprint!("{s}");
    }
    super::report_live(&consumed.synth, &args.output);
    // One machine-readable line for scripts and tests.
    eprintln!(
        "accounting: events={} routed={} coalesced={} bad={} kernel_drops={} received={}",
        report.events,
        consumed.events,
        report.coalesced,
        report.bad_total(),
        report.kernel_drops(),
        report.inputs.iter().map(|i| i.units).sum::<u64>()
    );
    super::fail_on_errors(&consumed)
}

/// The pipeline of a live foreign run: on the wall clock, routing only the senders the
/// flags let through, the detector hearing the clock so it can say `stall`; no progress bar
/// (a foreign run has no known length here).
fn pipeline(args: &ListenArgs, mapping: Mapping) -> Result<Pipeline> {
    let filter = SenderFilter {
        runs: args.runs.clone(),
        ranks: args.rank.clone(),
    };
    let builder = super::pipeline::builder(&args.output, mapping, 0, PlaybackClock::Wall)?
        .only(filter)
        .live_stream();
    super::pipeline::build(builder, &args.output)
}

/// `listen --tensorboard DIR`: polls the event files under DIR until Ctrl-C.
fn follow_tensorboard(args: &ListenArgs, dir: &std::path::Path) -> Result<()> {
    use sonograd::source::tensorboard::follow::{follow, Follower};
    use sonograd::source::tensorboard::tags::TagMap;
    if !(10..=60_000).contains(&args.poll_ms) {
        anyhow::bail!(
            "--poll-ms must be between 10 and 60000, got {}",
            args.poll_ms
        );
    }
    let map = args.tags.as_deref().map(TagMap::parse).transpose()?;
    let mapping = super::load_mapping(&args.output)?;
    let mut follower = Follower::new(dir, map)?;
    if mapping.controls.list.iter().any(|c| c.target.is_training()) && !args.output.quiet {
        eprintln!(
            "note: --tensorboard: the training controls have no run to reach (the run only writes files); the sound controls and `mark` act"
        );
    }
    let pipeline = pipeline(args, mapping.clone())?;
    let (mut tx, rx, stats) = event_queue(args.capacity);
    let running = pipeline.spawn(rx);
    // Controls: each change is an event in the stream, at the last step read.
    let last_step = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let into_stream = IntoStream {
        stream: tx.another(),
        last_step: last_step.clone(),
    };
    let hub = super::start_controls(&args.output, &mapping, Box::new(into_stream))?;
    // Scripts and tests read this line.
    eprintln!("listening: tensorboard {}", dir.display());
    let quiet = args.output.quiet;
    let result = follow(
        &mut follower,
        std::time::Duration::from_millis(args.poll_ms),
        &mut |e| {
            last_step.store(e.step, std::sync::atomic::Ordering::Relaxed);
            tx.send(e)
        },
        &mut |n| eprintln!("warning: {n}"),
        &mut |name| {
            if !quiet {
                eprintln!("run found: {name}");
            }
        },
        &STOP,
    );
    let hub_report = hub.map(|h| h.finish());
    tx.close();
    let consumed = running.finish();
    let report = result?;
    if let (Some(h), false) = (&hub_report, quiet) {
        eprintln!("  {h}");
    }
    if !quiet {
        eprintln!(
            "  followed {} run(s) in {}: {} events, {} damaged records skipped",
            report.runs.len(),
            dir.display(),
            report.events,
            report.corrupt
        );
        eprintln!("  routed {} events", consumed.events);
        let mut s = consumed.summary.clone();
        s.recording = args.output.record.clone();
        eprint!("{s}");
    }
    super::report_live(&consumed.synth, &args.output);
    eprintln!(
        "accounting: events={} routed={} coalesced={} bad={} kernel_drops=0 received={}",
        report.events,
        consumed.events,
        stats.coalesced(),
        report.corrupt,
        report.events
    );
    super::fail_on_errors(&consumed)
}

/// `listen`'s side of the controls: the change as a `control` event in the stream (at the
/// last step seen), and sent on to the runs when it is about training.
struct Forwarder {
    stream: sonograd::source::listen::Injector,
    senders: sonograd::source::listen::ControlReturn,
}

/// A control change as the `control` event of step `step`, stamped now.
fn control_event(step: u64, change: sonograd::control::Applied) -> sonograd::event::Event {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    sonograd::event::Event::new(
        step,
        0,
        time,
        sonograd::event::Payload::Control {
            control: change.def.name.clone(),
            source: change.source,
            target: change.def.target.event_name().into(),
            value: change.value,
        },
    )
}

/// `listen --tensorboard`'s side of the controls: the change as a `control` event in the
/// stream, at the last step read (the files' writer cannot be reached).
struct IntoStream {
    stream: sonograd::pipeline::queue::EventSender,
    last_step: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl sonograd::control::Apply for IntoStream {
    fn apply(&mut self, change: sonograd::control::Applied) {
        let step = self.last_step.load(std::sync::atomic::Ordering::Relaxed);
        self.stream.send(control_event(step, change));
    }
}

impl sonograd::control::Apply for Forwarder {
    fn apply(&mut self, change: sonograd::control::Applied) {
        let training = change.def.target.is_training();
        let event = control_event(self.stream.last_step(), change);
        if training {
            self.senders.forward(&event);
        }
        self.stream.send(event);
    }
}
