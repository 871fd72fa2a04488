//! The compact step datagram (version 1): one training step in one binary datagram, as the
//! Python client sends it, documented in `docs/listen.md`. Decoding is pure and never panics;
//! sharded steps (FSDP: each rank sends sums of squares over its shards) are combined over
//! all ranks by [`ShardCombiner`] into the true per-layer and total norms.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::{Event, Layer, NonFiniteKind, Payload, Quantity};

use super::decode::{BadInput, BadKind, MAX_NAME_LEN};

/// The first three bytes of a compact datagram (a JSON line never starts with NUL).
pub(crate) const MAGIC: [u8; 3] = [0, b'S', b'G'];
/// The compact format version this build reads (the fourth byte).
pub(crate) const VERSION: u8 = 1;
/// Size of the fixed header in bytes.
#[cfg(test)]
pub(crate) const HEADER_SIZE: usize = 72;

const FLAG_LOSS: u8 = 1;
const FLAG_LR: u8 = 2;
const FLAG_TOTAL: u8 = 4;
const FLAG_RANK: u8 = 8;
const FLAG_SHARD: u8 = 16;

/// Most ranks whose shards one step may combine.
pub(crate) const MAX_WORLD: u32 = 4096;
/// Sharded steps waiting for their other ranks, per input; older ones are given up.
pub(crate) const MAX_PENDING_STEPS: usize = 64;

/// Whether a datagram is in the compact form (rather than JSON lines).
pub(crate) fn is_compact(bytes: &[u8]) -> bool {
    bytes.first() == Some(&0)
}

/// One decoded compact datagram.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StepPart {
    /// Optimizer step.
    pub step: u64,
    /// Epoch.
    pub epoch: u32,
    /// Unix seconds.
    pub time: f64,
    /// Run tag.
    pub run: Option<Arc<str>>,
    /// Rank, when tagged.
    pub rank: Option<u32>,
    /// Ranks whose shards make this step (0: not sharded).
    pub world: u32,
    /// Which of `parts` datagrams of this rank's step this is.
    pub part: u16,
    /// How many datagrams this rank's step was cut into.
    pub parts: u16,
    /// Loss, when sent.
    pub loss: Option<f64>,
    /// Learning rate, when sent.
    pub lr: Option<f64>,
    /// Total norm (sharded: this rank's sum of squares), when sent.
    pub total: Option<f64>,
    /// Layers with a gradient: index, name, norm (sharded: sum of squares).
    pub layers: Vec<(u32, Arc<str>, f64)>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BadInput> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(BadInput::new(
                BadKind::BadCompact,
                format!(
                    "compact datagram of {} bytes ends inside {what} (at byte {})",
                    self.bytes.len(),
                    self.at
                ),
            ));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self, what: &str) -> Result<u8, BadInput> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, BadInput> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, BadInput> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn u64(&mut self, what: &str) -> Result<u64, BadInput> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }
    fn f64(&mut self, what: &str) -> Result<f64, BadInput> {
        Ok(f64::from_bits(self.u64(what)?))
    }
    fn text(&mut self, n: usize, what: &str) -> Result<&'a str, BadInput> {
        std::str::from_utf8(self.take(n, what)?).map_err(|e| {
            BadInput::new(
                BadKind::NotUtf8,
                format!("compact datagram: {what} is not UTF-8 ({e})"),
            )
        })
    }
}

/// Decodes one compact datagram.
pub(crate) fn decode(bytes: &[u8]) -> Result<StepPart, BadInput> {
    let mut r = Reader { bytes, at: 0 };
    let magic = r.take(4, "the header")?;
    if magic[..3] != MAGIC {
        return Err(BadInput::new(
            BadKind::BadCompact,
            "a datagram starting with NUL must start with the compact magic \\0SG",
        ));
    }
    if magic[3] != VERSION {
        let kind = if magic[3] > VERSION {
            BadKind::NewerVersion
        } else {
            BadKind::BadCompact
        };
        return Err(BadInput::new(
            kind,
            format!(
                "compact format version {} (this sonograd reads version {VERSION})",
                magic[3]
            ),
        ));
    }
    let flags = r.u8("the header")?;
    let nrun = usize::from(r.u8("the header")?);
    let nlayers = usize::from(r.u16("the header")?);
    let step = r.u64("the header")?;
    let epoch = r.u32("the header")?;
    let rank = r.u32("the header")?;
    let world = r.u32("the header")?;
    let part = r.u16("the header")?;
    let parts = r.u16("the header")?;
    let first = r.u32("the header")?;
    let _reserved = r.u32("the header")?;
    let time = r.f64("the header")?;
    let loss = r.f64("the header")?;
    let lr = r.f64("the header")?;
    let total = r.f64("the header")?;
    let bad = |detail: String| Err(BadInput::new(BadKind::BadCompact, detail));
    if step > i64::MAX as u64 {
        return bad(format!("compact datagram: step {step} is out of range"));
    }
    if parts == 0 || part >= parts {
        return bad(format!(
            "compact datagram: part {part} of {parts} (parts must be at least 1 and part below it)"
        ));
    }
    let sharded = flags & FLAG_SHARD != 0;
    if sharded && (world == 0 || world > MAX_WORLD) {
        return bad(format!(
            "compact datagram: a sharded step from {world} ranks (1 to {MAX_WORLD})"
        ));
    }
    let run = match nrun {
        0 => None,
        n => Some(Arc::<str>::from(r.text(n, "the run tag")?)),
    };
    let mut names = Vec::with_capacity(nlayers);
    for _ in 0..nlayers {
        let n = usize::from(r.u8("a layer name")?);
        let name = r.text(n, "a layer name")?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return bad(format!("compact datagram: a layer name of {n} bytes"));
        }
        names.push(Arc::<str>::from(name));
    }
    let mut layers = Vec::with_capacity(nlayers);
    for (i, name) in names.into_iter().enumerate() {
        let value = r.f64("the layer values")?;
        if value < 0.0 {
            continue; // no gradient this step
        }
        let Some(index) = u32::try_from(i).ok().and_then(|i| first.checked_add(i)) else {
            return bad("compact datagram: layer index out of range".into());
        };
        layers.push((index, name, value));
    }
    if r.at != bytes.len() {
        return bad(format!(
            "compact datagram has {} bytes after its last layer value",
            bytes.len() - r.at
        ));
    }
    let has = |flag: u8| flags & flag != 0;
    Ok(StepPart {
        step,
        epoch,
        time,
        run,
        rank: has(FLAG_RANK).then_some(rank),
        world: if sharded { world } else { 0 },
        part,
        parts,
        loss: has(FLAG_LOSS).then_some(loss),
        lr: has(FLAG_LR).then_some(lr),
        total: has(FLAG_TOTAL)
            .then_some(total)
            .filter(|t| *t >= 0.0 || t.is_nan()),
        layers,
    })
}

fn state_of(value: f64) -> Option<NonFiniteKind> {
    if value.is_nan() {
        Some(NonFiniteKind::Nan)
    } else if value.is_infinite() {
        Some(NonFiniteKind::Inf)
    } else {
        None
    }
}

/// The events of one step: each layer's `grad_norm` (and `non_finite` for a NaN or Inf one),
/// `total_norm`, `loss` (and its `non_finite`), `lr`. `rank` tags them all.
#[allow(clippy::too_many_arguments)]
fn step_events(
    step: u64,
    epoch: u32,
    time: f64,
    run: &Option<Arc<str>>,
    rank: Option<u32>,
    layers: impl IntoIterator<Item = (u32, Arc<str>, f64)>,
    total: Option<f64>,
    loss: Option<f64>,
    lr: Option<f64>,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut push = |payload: Payload| {
        let mut e = Event::new(step, epoch, time, payload);
        e.run = run.clone();
        e.rank = rank;
        out.push(e);
    };
    for (index, name, value) in layers {
        let layer = Layer {
            name,
            index: Some(index),
        };
        push(Payload::GradNorm {
            layer: layer.clone(),
            value,
        });
        if let Some(state) = state_of(value) {
            push(Payload::NonFinite {
                layer: Some(layer),
                quantity: Quantity::Grad,
                state,
            });
        }
    }
    if let Some(value) = total {
        push(Payload::TotalNorm { value });
    }
    if let Some(value) = loss {
        push(Payload::Loss { value });
        if let Some(state) = state_of(value) {
            push(Payload::NonFinite {
                layer: None,
                quantity: Quantity::Loss,
                state,
            });
        }
    }
    if let Some(value) = lr {
        push(Payload::Lr { value });
    }
    out
}

/// The events of an unsharded datagram.
pub(crate) fn events(part: StepPart) -> Vec<Event> {
    step_events(
        part.step,
        part.epoch,
        part.time,
        &part.run,
        part.rank,
        part.layers,
        part.total,
        part.loss,
        part.lr,
    )
}

/// One sharded step being gathered: the parts seen per rank and the running sums.
#[derive(Debug, Default)]
struct Gathering {
    world: u32,
    seen: BTreeMap<(u32, u16), ()>,
    expected: BTreeMap<u32, u16>,
    layers: BTreeMap<u32, (Arc<str>, f64)>,
    total: Option<f64>,
    losses: Vec<f64>,
    lr: Option<f64>,
    epoch: u32,
    time: f64,
}

impl Gathering {
    fn complete(&self) -> bool {
        self.expected.len() == self.world as usize
            && self
                .expected
                .iter()
                .all(|(rank, parts)| (0..*parts).all(|p| self.seen.contains_key(&(*rank, p))))
    }
}

/// Adds the sums of squares that the ranks of a sharded run send for a step, and gives the
/// step's true norms once every rank's datagrams arrived. Steps that never complete (a lost
/// datagram, a rank that died) are given up after [`MAX_PENDING_STEPS`] newer ones, or at
/// the end, and counted.
#[derive(Debug, Default)]
pub(crate) struct ShardCombiner {
    pending: BTreeMap<(Option<Arc<str>>, u64), Gathering>,
}

impl ShardCombiner {
    /// Adds one sharded datagram; returns the step's events once it is complete, and the
    /// number of incomplete steps given up to make room.
    pub(crate) fn add(&mut self, part: StepPart) -> Result<(Vec<Event>, u64), BadInput> {
        let Some(rank) = part.rank else {
            return Err(BadInput::new(
                BadKind::BadCompact,
                "compact datagram: a sharded step must carry its rank",
            ));
        };
        if rank >= part.world {
            return Err(BadInput::new(
                BadKind::BadCompact,
                format!(
                    "compact datagram: rank {rank} of a sharded step from {} ranks",
                    part.world
                ),
            ));
        }
        let key = (part.run.clone(), part.step);
        let mut given_up = 0;
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING_STEPS {
            self.pending.pop_first();
            given_up += 1;
        }
        let g = self.pending.entry(key.clone()).or_default();
        if g.world == 0 {
            g.world = part.world;
            g.epoch = part.epoch;
            g.time = part.time;
        }
        if g.world != part.world || g.seen.insert((rank, part.part), ()).is_some() {
            return Err(BadInput::new(
                BadKind::BadCompact,
                format!(
                    "compact datagram: step {} of rank {rank} part {} repeated or from a world of {} ranks, not {}",
                    part.step, part.part, part.world, g.world
                ),
            ));
        }
        g.expected.insert(rank, part.parts);
        g.time = g.time.max(part.time);
        for (index, name, sq) in part.layers {
            let slot = g.layers.entry(index).or_insert((name, 0.0));
            slot.1 += sq;
        }
        if let Some(t) = part.total {
            *g.total.get_or_insert(0.0) += t;
        }
        if let Some(l) = part.loss {
            g.losses.push(l);
        }
        if part.lr.is_some() && (g.lr.is_none() || rank == 0) {
            g.lr = part.lr;
        }
        if !g.complete() {
            return Ok((Vec::new(), given_up));
        }
        let g = self.pending.remove(&key).unwrap_or_default();
        let loss =
            (!g.losses.is_empty()).then(|| g.losses.iter().sum::<f64>() / g.losses.len() as f64);
        let layers = g
            .layers
            .into_iter()
            .map(|(index, (name, sq))| (index, name, sq.sqrt()));
        let events = step_events(
            key.1,
            g.epoch,
            g.time,
            &key.0,
            None,
            layers,
            g.total.map(f64::sqrt),
            loss,
            g.lr,
        );
        Ok((events, given_up))
    }

    /// Gives up every step still waiting; returns how many.
    pub(crate) fn finish(&mut self) -> u64 {
        let n = self.pending.len() as u64;
        self.pending.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a compact datagram as the Python client does (see clients/python/sonograd/wire.py).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn datagram(
        step: u64,
        rank: Option<u32>,
        world: u32,
        (part, parts, first): (u16, u16, u32),
        run: &str,
        layers: &[(&str, f64)],
        loss: Option<f64>,
        lr: Option<f64>,
        total: Option<f64>,
    ) -> Vec<u8> {
        let mut flags = 0;
        for (f, on) in [
            (FLAG_LOSS, loss.is_some()),
            (FLAG_LR, lr.is_some()),
            (FLAG_TOTAL, total.is_some()),
            (FLAG_RANK, rank.is_some()),
            (FLAG_SHARD, world > 0),
        ] {
            if on {
                flags |= f;
            }
        }
        let mut d = vec![0, b'S', b'G', VERSION, flags, run.len() as u8];
        d.extend((layers.len() as u16).to_le_bytes());
        d.extend(step.to_le_bytes());
        d.extend(2u32.to_le_bytes());
        d.extend(rank.unwrap_or(0).to_le_bytes());
        d.extend(world.to_le_bytes());
        d.extend(part.to_le_bytes());
        d.extend(parts.to_le_bytes());
        d.extend(first.to_le_bytes());
        d.extend(0u32.to_le_bytes());
        for v in [
            1.8e9,
            loss.unwrap_or(0.0),
            lr.unwrap_or(0.0),
            total.unwrap_or(0.0),
        ] {
            d.extend(v.to_le_bytes());
        }
        assert_eq!(d.len(), HEADER_SIZE);
        d.extend(run.as_bytes());
        for (name, _) in layers {
            d.push(name.len() as u8);
            d.extend(name.as_bytes());
        }
        for (_, v) in layers {
            d.extend(v.to_le_bytes());
        }
        d
    }

    #[test]
    fn a_step_decodes_into_its_events() {
        let d = datagram(
            7,
            Some(3),
            0,
            (0, 1, 0),
            "exp",
            &[("fc1", 1.5), ("fc2", -1.0), ("fc3", f64::NAN)],
            Some(f64::INFINITY),
            Some(0.1),
            Some(2.5),
        );
        assert!(is_compact(&d));
        let events = events(decode(&d).unwrap());
        let kinds: Vec<&str> = events.iter().map(|e| e.payload.kind()).collect();
        assert_eq!(
            kinds,
            [
                "grad_norm",
                "grad_norm",
                "non_finite",
                "total_norm",
                "loss",
                "non_finite",
                "lr"
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.step == 7 && e.epoch == 2 && e.rank == Some(3)));
        assert!(events.iter().all(|e| e.run.as_deref() == Some("exp")));
        let fc3 = events[1].payload.layer().unwrap();
        assert_eq!((fc3.name.as_ref(), fc3.index), ("fc3", Some(2)));
        assert!(matches!(
            events[5].payload,
            Payload::NonFinite {
                quantity: Quantity::Loss,
                state: NonFiniteKind::Inf,
                ..
            }
        ));
    }

    #[test]
    fn bad_datagrams_are_refused_with_a_reason() {
        let good = datagram(1, None, 0, (0, 1, 0), "", &[("a", 1.0)], None, None, None);
        for cut in 0..good.len() {
            let err = decode(&good[..cut]).unwrap_err();
            assert_eq!(err.kind, BadKind::BadCompact, "cut at {cut}: {err}");
        }
        let mut newer = good.clone();
        newer[3] = 2;
        assert_eq!(decode(&newer).unwrap_err().kind, BadKind::NewerVersion);
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer)
            .unwrap_err()
            .detail
            .contains("after its last"));
        let mut bad_name = good.clone();
        bad_name[HEADER_SIZE + 1] = 0xff;
        assert_eq!(decode(&bad_name).unwrap_err().kind, BadKind::NotUtf8);
        let mut parts = good;
        parts[28] = 1; // part 1 of 1
        assert_eq!(decode(&parts).unwrap_err().kind, BadKind::BadCompact);
    }

    #[test]
    fn shards_add_up_to_the_true_norms_once_every_rank_arrived() {
        let mut c = ShardCombiner::default();
        // Layer a: 3² + 4² over two ranks; layer b only on rank 1 (split into two parts).
        let r0 = datagram(
            5,
            Some(0),
            2,
            (0, 1, 0),
            "f",
            &[("a", 9.0), ("b", 0.0)],
            Some(1.0),
            Some(0.5),
            Some(9.0),
        );
        let r1a = datagram(
            5,
            Some(1),
            2,
            (0, 2, 0),
            "f",
            &[("a", 16.0)],
            Some(3.0),
            Some(0.5),
            Some(160.0),
        );
        let r1b = datagram(
            5,
            Some(1),
            2,
            (1, 2, 1),
            "f",
            &[("b", 144.0)],
            None,
            None,
            None,
        );
        assert!(c.add(decode(&r0).unwrap()).unwrap().0.is_empty());
        assert!(c.add(decode(&r1a).unwrap()).unwrap().0.is_empty());
        assert!(c.add(decode(&r0).unwrap()).is_err(), "a repeat is refused");
        let (events, given_up) = c.add(decode(&r1b).unwrap()).unwrap();
        assert_eq!(given_up, 0);
        let value = |kind: &str, layer: Option<&str>| {
            events
                .iter()
                .find(|e| {
                    e.payload.kind() == kind && e.payload.layer().map(|l| l.name.as_ref()) == layer
                })
                .and_then(|e| e.payload.value())
                .unwrap()
        };
        assert_eq!(value("grad_norm", Some("a")), 5.0);
        assert_eq!(value("grad_norm", Some("b")), 12.0);
        assert_eq!(value("total_norm", None), 13.0);
        assert_eq!(value("loss", None), 2.0);
        assert_eq!(value("lr", None), 0.5);
        assert!(events.iter().all(|e| e.rank.is_none() && e.step == 5));
        assert_eq!(c.finish(), 0);
    }

    #[test]
    fn incomplete_shard_steps_are_given_up_and_counted() {
        let mut c = ShardCombiner::default();
        let mut given_up = 0;
        for step in 0..(MAX_PENDING_STEPS as u64 + 10) {
            let d = datagram(
                step,
                Some(0),
                2,
                (0, 1, 0),
                "",
                &[("a", 1.0)],
                None,
                None,
                None,
            );
            let (events, g) = c.add(decode(&d).unwrap()).unwrap();
            assert!(events.is_empty());
            given_up += g;
        }
        assert_eq!(given_up, 10);
        assert_eq!(c.finish(), MAX_PENDING_STEPS as u64);
        let d = datagram(1, Some(2), 2, (0, 1, 0), "", &[], None, None, None);
        assert!(c.add(decode(&d).unwrap()).is_err(), "rank 2 of 2");
    }
}
