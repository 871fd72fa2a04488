//! What a TensorBoard tag becomes: the naming conventions of PyTorch, Lightning and Hugging
//! Face logs, and the `--tags` map that overrides them.
//!
//! | tag | becomes |
//! | --- | --- |
//! | `*loss*` | `loss` (one tag: train over val, per step over per epoch); other loss tags `eval` |
//! | `lr`, `learning_rate`, `*/lr`, `*/learning_rate`, `lr-*` (Lightning's monitor) | `lr` |
//! | `grad_norm/<layer>`, `grad_norm_<layer>` | `grad_norm` of that layer |
//! | `grad_2.0_norm/<param>` (Lightning) | `grad_norm` of the param's layer, summed in squares |
//! | `grad_2.0_norm_total`, `*/grad_norm`, `grad_norm` | `total_norm` |
//! | `*accuracy*` | `eval` named by the tag |
//! | `epoch`, `*/epoch` | the epoch of the events that follow |
//!
//! Matching ignores case. The `--tags` map uses the `--csv-columns` syntax with tags in place
//! of columns: `loss=train/loss,lr=opt/lr,grad_norm:fc1=g/fc1,eval:acc=val/acc`; its keys
//! are `loss`, `lr`, `total_norm`, `grad_norm:LAYER`, `weight_norm:LAYER`,
//! `update_ratio:LAYER`, `eval:NAME`, `epoch` and `ignore`. A layerless kind it names (`loss`,
//! `lr`, `total_norm`) comes only from the tags it gives.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// What a tag's values become.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `loss` events.
    Loss,
    /// `lr` events.
    Lr,
    /// `total_norm` events.
    TotalNorm,
    /// `grad_norm` events of a layer.
    GradNorm(Arc<str>),
    /// A parameter's gradient norm, summed in squares with the layer's other parameters at
    /// the same step into one `grad_norm` event of the layer.
    ParamGradNorm(Arc<str>),
    /// `weight_norm` events of a layer.
    WeightNorm(Arc<str>),
    /// `update_ratio` events of a layer.
    UpdateRatio(Arc<str>),
    /// `eval` events of this name.
    Eval(String),
    /// The epoch of the events from this step on.
    Epoch,
    /// Not played.
    Ignored,
}

impl Target {
    /// The event kind (`--tags` key) this target emits, or `ignore`/`epoch`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Loss => "loss",
            Target::Lr => "lr",
            Target::TotalNorm => "total_norm",
            Target::GradNorm(_) | Target::ParamGradNorm(_) => "grad_norm",
            Target::WeightNorm(_) => "weight_norm",
            Target::UpdateRatio(_) => "update_ratio",
            Target::Eval(_) => "eval",
            Target::Epoch => "epoch",
            Target::Ignored => "ignore",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::GradNorm(l) | Target::WeightNorm(l) | Target::UpdateRatio(l) => {
                write!(f, "{}:{l}", self.kind())
            }
            Target::ParamGradNorm(l) => write!(f, "grad_norm:{l} (summed with its layer)"),
            Target::Eval(n) => write!(f, "eval:{n}"),
            Target::Ignored => f.write_str("(ignored)"),
            _ => f.write_str(self.kind()),
        }
    }
}

/// A bad `--tags` map.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--tags: {0}")]
pub struct TagMapError(pub String);

/// The parsed `--tags` map: tag → target, in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TagMap {
    /// The entries.
    pub entries: Vec<(String, Target)>,
}

const LAYERLESS: [&str; 5] = ["loss", "lr", "total_norm", "epoch", "ignore"];
const PER_LAYER: [&str; 3] = ["grad_norm", "weight_norm", "update_ratio"];

impl TagMap {
    /// Parses `KEY=TAG,KEY=TAG,...` (see the module docs).
    pub fn parse(spec: &str) -> Result<TagMap, TagMapError> {
        let err = |m: String| TagMapError(m);
        let mut entries: Vec<(String, Target)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, tag) = item
                .split_once('=')
                .ok_or_else(|| err(format!("{item:?}: expected KEY=TAG, e.g. loss=train/loss")))?;
            let (key, tag) = (key.trim(), tag.trim().to_string());
            if tag.is_empty() {
                return Err(err(format!("{item:?}: the tag is empty")));
            }
            let (kind, arg) = match key.split_once(':') {
                Some((k, a)) => (k.trim(), Some(a.trim())),
                None => (key, None),
            };
            let target = match (kind, arg) {
                ("loss", None) => Target::Loss,
                ("lr", None) => Target::Lr,
                ("total_norm", None) => Target::TotalNorm,
                ("epoch", None) => Target::Epoch,
                ("ignore", None) => Target::Ignored,
                ("grad_norm", Some(l)) if !l.is_empty() => Target::GradNorm(l.into()),
                ("weight_norm", Some(l)) if !l.is_empty() => Target::WeightNorm(l.into()),
                ("update_ratio", Some(l)) if !l.is_empty() => Target::UpdateRatio(l.into()),
                (k, _) if PER_LAYER.contains(&k) => {
                    return Err(err(format!("{key:?} needs a layer: {k}:LAYER=TAG")))
                }
                ("eval", Some(n)) if !n.is_empty() => Target::Eval(n.to_string()),
                ("eval", _) => return Err(err(format!("{key:?} needs a name: eval:NAME=TAG"))),
                (k, Some(_)) if LAYERLESS.contains(&k) => {
                    return Err(err(format!("{key:?}: {k} takes no :ARGUMENT")))
                }
                _ => {
                    return Err(err(format!(
                        "unknown key {key:?}; expected {}, {}:LAYER or eval:NAME",
                        LAYERLESS.join(", "),
                        PER_LAYER.join(":LAYER, ")
                    )))
                }
            };
            if entries.iter().any(|(t, _)| *t == tag) {
                return Err(err(format!("the tag {tag:?} is mapped twice")));
            }
            entries.push((tag, target));
        }
        if entries.is_empty() {
            return Err(err(
                "no tag given, e.g. loss=train/loss or grad_norm:fc1=grads/fc1".into(),
            ));
        }
        Ok(TagMap { entries })
    }

    fn get(&self, tag: &str) -> Option<&Target> {
        self.entries.iter().find(|(t, _)| t == tag).map(|(_, x)| x)
    }

    /// The layerless kinds the map gives explicitly.
    fn claimed(&self) -> HashSet<&'static str> {
        self.entries
            .iter()
            .filter(|(_, t)| matches!(t, Target::Loss | Target::Lr | Target::TotalNorm))
            .map(|(_, t)| t.kind())
            .collect()
    }
}

/// A loss tag's rank: train before val, per step before per epoch.
fn loss_rank(lower: &str) -> (bool, bool) {
    let held_out = ["val", "valid", "eval", "test"].iter().any(|w| {
        lower
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|p| p == *w)
    }) || lower.contains("val_")
        || lower.contains("_val");
    (held_out, lower.contains("epoch"))
}

/// The conventional target of one tag, before the loss tags are ranked (every `*loss*` tag
/// is [`Target::Loss`] here).
pub fn by_convention(tag: &str) -> Target {
    let lower = tag.to_ascii_lowercase();
    let last = lower.rsplit('/').next().unwrap_or(&lower);
    if let Some(param) = find_after(tag, &lower, "grad_2.0_norm/") {
        let layer = param.rsplit_once('.').map_or(param, |(l, _)| l);
        return Target::ParamGradNorm(layer.into());
    }
    if lower.ends_with("grad_2.0_norm_total")
        || last == "grad_norm"
        || last == "grad_norm_total"
        || lower.ends_with("grad_norm/total")
    {
        return Target::TotalNorm;
    }
    if let Some(layer) = find_after(tag, &lower, "grad_norm/") {
        return Target::GradNorm(layer.into());
    }
    if let Some(layer) = last.strip_prefix("grad_norm_").filter(|l| !l.is_empty()) {
        let start = tag.len() - layer.len();
        return Target::GradNorm(tag[start..].into());
    }
    if lower.contains("loss") {
        return Target::Loss;
    }
    if matches!(last, "lr" | "learning_rate") || last.starts_with("lr-") {
        return Target::Lr;
    }
    if lower.contains("accuracy") {
        return Target::Eval(tag.to_string());
    }
    if last == "epoch" {
        return Target::Epoch;
    }
    Target::Ignored
}

/// The non-empty rest of `tag` after the first `needle` (matched in `lower`).
fn find_after<'a>(tag: &'a str, lower: &str, needle: &str) -> Option<&'a str> {
    let at = lower.find(needle)? + needle.len();
    Some(&tag[at..]).filter(|rest| !rest.is_empty())
}

/// Where a tag's target came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The naming convention.
    Convention,
    /// The `--tags` map.
    Map,
}

/// The targets of a run's tags: `--tags` entries first, the convention for the rest, with the
/// loss tags ranked so that exactly one becomes `loss`.
pub fn resolve<'a>(
    tags: impl IntoIterator<Item = &'a str>,
    map: Option<&TagMap>,
) -> BTreeMap<String, (Target, Origin)> {
    let claimed = map.map(TagMap::claimed).unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut losses: Vec<&str> = Vec::new();
    for tag in tags {
        if let Some(t) = map.and_then(|m| m.get(tag)) {
            out.insert(tag.to_string(), (t.clone(), Origin::Map));
            continue;
        }
        let t = by_convention(tag);
        let t = if claimed.contains(t.kind()) {
            match t {
                Target::Loss => Target::Eval(tag.to_string()),
                _ => Target::Ignored,
            }
        } else {
            t
        };
        if t == Target::Loss {
            losses.push(tag);
        }
        out.insert(tag.to_string(), (t, Origin::Convention));
    }
    let best = losses.iter().copied().min_by_key(|t| {
        let (held_out, per_epoch) = loss_rank(&t.to_ascii_lowercase());
        (held_out, per_epoch, t.len(), t.to_string())
    });
    for tag in losses {
        if Some(tag) != best {
            out.insert(
                tag.to_string(),
                (Target::Eval(tag.to_string()), Origin::Convention),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(tags: &[&str]) -> Vec<String> {
        let r = resolve(tags.iter().copied(), None);
        tags.iter().map(|t| r[*t].0.to_string()).collect()
    }

    #[test]
    fn the_conventions_of_common_loggers() {
        assert_eq!(
            conv(&[
                "train/loss",
                "eval/loss",
                "train/learning_rate",
                "train/grad_norm",
                "train/epoch",
                "eval/accuracy",
            ]),
            [
                "loss",
                "eval:eval/loss",
                "lr",
                "total_norm",
                "epoch",
                "eval:eval/accuracy"
            ]
        );
        assert_eq!(
            conv(&[
                "train_loss_epoch",
                "val_loss",
                "train_loss_step",
                "grad_2.0_norm/net.0.weight",
                "grad_2.0_norm/net.0.bias",
                "grad_2.0_norm_total",
                "lr-SGD",
                "epoch",
                "hp_metric",
            ]),
            [
                "eval:train_loss_epoch",
                "eval:val_loss",
                "loss",
                "grad_norm:net.0 (summed with its layer)",
                "grad_norm:net.0 (summed with its layer)",
                "total_norm",
                "lr",
                "epoch",
                "(ignored)",
            ]
        );
        assert_eq!(
            conv(&[
                "Loss/val",
                "grad_norm/Conv1",
                "grad_norm_fc2",
                "opt/lr",
                "lr",
                "Acc"
            ]),
            [
                "loss",
                "grad_norm:Conv1",
                "grad_norm:fc2",
                "lr",
                "lr",
                "(ignored)"
            ]
        );
        assert_eq!(conv(&["loss/val", "loss/train"]), ["eval:loss/val", "loss"]);
    }

    #[test]
    fn the_map_overrides_and_claims_its_kinds() {
        let m = TagMap::parse("loss=objective, grad_norm:fc1=g1 ,ignore=train/loss").unwrap();
        let r = resolve(
            ["objective", "g1", "train/loss", "val/loss", "grad_norm/fc2"],
            Some(&m),
        );
        let got: Vec<String> = ["objective", "g1", "train/loss", "val/loss", "grad_norm/fc2"]
            .iter()
            .map(|t| format!("{} {:?}", r[*t].0, r[*t].1))
            .collect();
        assert_eq!(
            got,
            [
                "loss Map",
                "grad_norm:fc1 Map",
                "(ignored) Map",
                "eval:val/loss Convention",
                "grad_norm:fc2 Convention"
            ]
        );
    }

    #[test]
    fn a_bad_map_names_the_item() {
        for (spec, needle) in [
            ("", "no tag given"),
            ("loss", "expected KEY=TAG"),
            ("loss=", "the tag is empty"),
            ("grad_norm=x", "needs a layer"),
            ("eval=x", "needs a name"),
            ("lr:x=y", "takes no :ARGUMENT"),
            ("wobble=x", "unknown key \"wobble\""),
            ("loss=a,lr=a", "mapped twice"),
        ] {
            let e = TagMap::parse(spec).unwrap_err().to_string();
            assert!(
                e.starts_with("--tags: ") && e.contains(needle),
                "{spec}: {e}"
            );
        }
    }
}
