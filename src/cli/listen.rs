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
    let pipeline = pipeline(args, mapping)?;
    let (mut tx, rx, stats) = event_queue(args.capacity);
    let running = pipeline.spawn(rx);
    // Scripts and tests read this line.
    eprintln!("listening: tensorboard {}", dir.display());
    let quiet = args.output.quiet;
    let result = follow(
        &mut follower,
        std::time::Duration::from_millis(args.poll_ms),
        &mut |e| tx.send(e),
        &mut |n| eprintln!("warning: {n}"),
        &mut |name| {
            if !quiet {
                eprintln!("run found: {name}");
            }
        },
        &STOP,
    );
    tx.close();
    let consumed = running.finish();
    let report = result?;
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

impl sonograd::control::Apply for Forwarder {
    fn apply(&mut self, change: sonograd::control::Applied) {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let event = sonograd::event::Event::new(
            self.stream.last_step(),
            0,
            time,
            sonograd::event::Payload::Control {
                control: change.def.name.clone(),
                source: change.source,
                target: change.def.target.event_name().into(),
                value: change.value,
            },
        );
        if change.def.target.is_training() {
            self.senders.forward(&event);
        }
        self.stream.send(event);
    }
}
