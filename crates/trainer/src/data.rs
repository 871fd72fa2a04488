//! Training data: built-in seeded synthetic sets and MNIST-format IDX files.
//!
//! Every set is split into a training and a held-out part and lives in memory as tensors.
//! The default, `digits`, stands in for the seed's MNIST: 28x28 grey images, 10 classes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

/// Which data to train on, as given on the command line (`--data`).
#[derive(Clone, Debug, PartialEq)]
pub enum DataSpec {
    /// Synthetic 28x28 "digits": 10 classes of seeded blob prototypes, shifted and noisy.
    Digits,
    /// Three interleaved 2-D spirals.
    Spirals,
    /// Two interleaved 2-D half moons.
    Moons,
    /// Four 2-D Gaussian blobs.
    Blobs,
    /// 2-D XOR: the label is whether x and y have different signs.
    Xor,
    /// MNIST-format IDX files in a folder.
    Idx(PathBuf),
}

impl FromStr for DataSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "digits" => Ok(DataSpec::Digits),
            "spirals" => Ok(DataSpec::Spirals),
            "moons" => Ok(DataSpec::Moons),
            "blobs" => Ok(DataSpec::Blobs),
            "xor" => Ok(DataSpec::Xor),
            _ => match s.strip_prefix("idx:") {
                Some(dir) if !dir.is_empty() => Ok(DataSpec::Idx(PathBuf::from(dir))),
                _ => Err(format!(
                    "unknown data `{s}`: expected digits, spirals, moons, blobs, xor or idx:DIR"
                )),
            },
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Digits => f.write_str("digits"),
            DataSpec::Spirals => f.write_str("spirals"),
            DataSpec::Moons => f.write_str("moons"),
            DataSpec::Blobs => f.write_str("blobs"),
            DataSpec::Xor => f.write_str("xor"),
            DataSpec::Idx(dir) => write!(f, "idx:{}", dir.display()),
        }
    }
}

/// Why data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The IDX folder or one of its files is missing.
    #[error("{path}: {what}")]
    Missing {
        /// The path looked at.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// An IDX file could not be read or is malformed.
    #[error("{path}: {what}")]
    BadIdx {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
}

/// A data set in memory, split into training and held-out parts.
pub struct Dataset {
    /// Short description, e.g. `digits (12000 train, 2000 held out)`.
    pub name: String,
    /// Training inputs, `[n, features]` f32.
    pub train_x: Tensor,
    /// Training labels, `[n]` i64.
    pub train_y: Tensor,
    /// Held-out inputs.
    pub test_x: Tensor,
    /// Held-out labels.
    pub test_y: Tensor,
    /// Number of classes.
    pub classes: usize,
    /// Image height and width when the inputs are images (needed by the CNN).
    pub image: Option<(usize, usize)>,
}

impl Dataset {
    /// Input width (features per example).
    pub fn features(&self) -> usize {
        self.train_x.size()[1] as usize
    }

    /// Number of training examples.
    pub fn len(&self) -> usize {
        self.train_x.size()[0] as usize
    }

    /// Whether there are no training examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads or generates the data a spec names; synthetic sets are fully determined by `seed`.
    pub fn load(spec: &DataSpec, seed: u64) -> Result<Dataset, DataError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_da7a);
        let (name, mut set) = match spec {
            DataSpec::Digits => ("digits", digits(&mut rng, 14_000)),
            DataSpec::Spirals => ("spirals", spirals(&mut rng, 3600, 3)),
            DataSpec::Moons => ("moons", moons(&mut rng, 3600)),
            DataSpec::Blobs => ("blobs", blobs(&mut rng, 3600, 4)),
            DataSpec::Xor => ("xor", xor(&mut rng, 3600)),
            DataSpec::Idx(dir) => return load_idx(dir),
        };
        let held_out = set.labels.len() / 7;
        set.name = name.to_string();
        Ok(set.into_dataset(held_out))
    }
}

/// Examples built in plain vectors before they become tensors.
struct RawSet {
    name: String,
    features: usize,
    inputs: Vec<f32>,
    labels: Vec<i64>,
    classes: usize,
    image: Option<(usize, usize)>,
}

impl RawSet {
    fn into_dataset(self, held_out: usize) -> Dataset {
        let n = self.labels.len();
        let x = Tensor::from_slice(&self.inputs).view([n as i64, self.features as i64]);
        let y = Tensor::from_slice(&self.labels);
        let train = (n - held_out) as i64;
        Dataset {
            name: format!("{} ({} train, {} held out)", self.name, train, held_out),
            train_x: x.narrow(0, 0, train).contiguous(),
            train_y: y.narrow(0, 0, train).contiguous(),
            test_x: x.narrow(0, train, held_out as i64).contiguous(),
            test_y: y.narrow(0, train, held_out as i64).contiguous(),
            classes: self.classes,
            image: self.image,
        }
    }
}

const SIDE: usize = 28;

/// Ten classes of 28x28 images, about as hard as MNIST for the seed's MLP: each class is a
/// seeded layout of four Gaussian strokes; every example jitters each stroke's position and
/// width, shifts the whole image, may add a stray stroke, and adds uniform noise.
fn digits(rng: &mut ChaCha8Rng, n: usize) -> RawSet {
    let classes = 10;
    let layouts: Vec<Vec<(f32, f32, f32)>> = (0..classes)
        .map(|_| {
            (0..4)
                .map(|_| {
                    (
                        rng.random_range(6.0..22.0),
                        rng.random_range(6.0..22.0),
                        rng.random_range(1.5..3.5),
                    )
                })
                .collect()
        })
        .collect();
    let mut inputs = vec![0f32; n * SIDE * SIDE];
    let mut labels = Vec::with_capacity(n);
    let (mut rows, mut cols) = ([0f32; SIDE], [0f32; SIDE]);
    for img in inputs.chunks_mut(SIDE * SIDE) {
        let class = rng.random_range(0..classes);
        let (dy, dx): (f32, f32) = (rng.random_range(-3.0..3.0), rng.random_range(-3.0..3.0));
        let gain: f32 = rng.random_range(0.6..1.2);
        let mut strokes = layouts[class].clone();
        if rng.random_bool(0.5) {
            strokes.push((
                rng.random_range(4.0..24.0),
                rng.random_range(4.0..24.0),
                rng.random_range(1.0..2.5),
            ));
        }
        for (cy, cx, s) in strokes {
            let cy = cy + dy + rng.random_range(-1.5..1.5);
            let cx = cx + dx + rng.random_range(-1.5..1.5);
            let s = s * rng.random_range(0.8..1.25);
            // A 2-D Gaussian is the product of a row and a column profile.
            for (i, (r, c)) in rows.iter_mut().zip(cols.iter_mut()).enumerate() {
                *r = (-(i as f32 - cy).powi(2) / (2.0 * s * s)).exp();
                *c = (-(i as f32 - cx).powi(2) / (2.0 * s * s)).exp();
            }
            for (row, r) in img.chunks_mut(SIDE).zip(rows.iter()) {
                for (px, c) in row.iter_mut().zip(cols.iter()) {
                    *px += gain * r * c;
                }
            }
        }
        for px in img.iter_mut() {
            let noise: f32 = rng.random_range(-0.35..0.35);
            *px = (*px + noise).clamp(0.0, 1.0);
        }
        labels.push(class as i64);
    }
    RawSet {
        name: String::new(),
        features: SIDE * SIDE,
        inputs,
        labels,
        classes,
        image: Some((SIDE, SIDE)),
    }
}

fn points(features: Vec<[f32; 2]>, labels: Vec<i64>, classes: usize) -> RawSet {
    let inputs = features.into_iter().flatten().collect();
    RawSet {
        name: String::new(),
        features: 2,
        inputs,
        labels,
        classes,
        image: None,
    }
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box-Muller; deterministic for a given generator state.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn spirals(rng: &mut ChaCha8Rng, n: usize, classes: usize) -> RawSet {
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % classes;
        let t: f32 = rng.random_range(0.0..1.0);
        let angle =
            class as f32 * std::f32::consts::TAU / classes as f32 + t * 4.0 + gauss(rng) * 0.2;
        xs.push([t * angle.cos(), t * angle.sin()]);
        ys.push(class as i64);
    }
    points(xs, ys, classes)
}

fn moons(rng: &mut ChaCha8Rng, n: usize) -> RawSet {
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % 2;
        let a: f32 = rng.random_range(0.0..std::f32::consts::PI);
        let (x, y) = if class == 0 {
            (a.cos(), a.sin())
        } else {
            (1.0 - a.cos(), 0.5 - a.sin())
        };
        xs.push([x + gauss(rng) * 0.1, y + gauss(rng) * 0.1]);
        ys.push(class as i64);
    }
    points(xs, ys, 2)
}

fn blobs(rng: &mut ChaCha8Rng, n: usize, classes: usize) -> RawSet {
    let centres: Vec<[f32; 2]> = (0..classes)
        .map(|_| [rng.random_range(-5.0..5.0), rng.random_range(-5.0..5.0)])
        .collect();
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let class = i % classes;
        let [cx, cy] = centres[class];
        xs.push([cx + gauss(rng), cy + gauss(rng)]);
        ys.push(class as i64);
    }
    points(xs, ys, classes)
}

fn xor(rng: &mut ChaCha8Rng, n: usize) -> RawSet {
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (x, y): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        xs.push([x, y]);
        ys.push(((x > 0.0) != (y > 0.0)) as i64);
    }
    points(xs, ys, 2)
}

/// Loads `DIR/train-images-idx3-ubyte` and `DIR/train-labels-idx1-ubyte` (any file names that
/// contain `images-idx3` / `labels-idx1` work; `train` is preferred, `t10k` files become the
/// held-out part, otherwise the last seventh of the training files is held out).
fn load_idx(dir: &Path) -> Result<Dataset, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what: "no such folder (--data idx:DIR)".into(),
        });
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::Missing {
            path: dir.to_path_buf(),
            what: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let find = |kind: &str, prefer: &str| -> Option<PathBuf> {
        let mut matches: Vec<&PathBuf> = entries
            .iter()
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(kind) && !n.ends_with(".gz"))
            })
            .collect();
        matches.sort();
        matches
            .iter()
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(prefer))
            })
            .or(matches.first())
            .map(|p| p.to_path_buf())
    };
    let missing = |what: &str| DataError::Missing {
        path: dir.to_path_buf(),
        what: format!("no {what} file (expected e.g. train-{what}-ubyte, uncompressed)"),
    };
    let images_path = find("images-idx3", "train").ok_or_else(|| missing("images-idx3"))?;
    let labels_path = find("labels-idx1", "train").ok_or_else(|| missing("labels-idx1"))?;
    let (images, h, w) = read_idx_images(&images_path)?;
    let labels = read_idx_labels(&labels_path)?;
    if labels.len() != images.len() / (h * w) {
        return Err(DataError::BadIdx {
            path: labels_path,
            what: format!(
                "{} labels for {} images in {}",
                labels.len(),
                images.len() / (h * w),
                images_path.display()
            ),
        });
    }
    let test = match (find("images-idx3", "t10k"), find("labels-idx1", "t10k")) {
        (Some(ti), Some(tl)) if ti != images_path && tl != labels_path => {
            let (timages, th, tw) = read_idx_images(&ti)?;
            let tlabels = read_idx_labels(&tl)?;
            if (th, tw) != (h, w) || tlabels.len() != timages.len() / (h * w) {
                return Err(DataError::BadIdx {
                    path: ti,
                    what: "held-out files do not match the training files' shape".into(),
                });
            }
            Some((timages, tlabels))
        }
        _ => None,
    };
    let mut all_labels = labels.clone();
    if let Some((_, tl)) = &test {
        all_labels.extend_from_slice(tl);
    }
    let classes = all_labels.iter().copied().max().unwrap_or(0) as usize + 1;
    let to_f32 = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect::<Vec<f32>>()
    };
    let name = format!("idx:{}", dir.display());
    let raw = |inputs: Vec<f32>, labels: Vec<i64>| RawSet {
        name: name.clone(),
        features: h * w,
        inputs,
        labels,
        classes,
        image: Some((h, w)),
    };
    Ok(match test {
        Some((timages, tlabels)) => {
            let n_test = tlabels.len();
            let mut inputs = to_f32(&images);
            inputs.extend(to_f32(&timages));
            let mut labels = labels;
            labels.extend(tlabels);
            raw(inputs, labels).into_dataset(n_test)
        }
        None => {
            let held_out = labels.len() / 7;
            raw(to_f32(&images), labels).into_dataset(held_out)
        }
    })
}

fn read_idx(path: &Path, magic: u32, dims: usize) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bad = |what: String| DataError::BadIdx {
        path: path.to_path_buf(),
        what,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let header = 4 + 4 * dims;
    if bytes.len() < header {
        return Err(bad(format!(
            "too short for an IDX header ({} bytes)",
            bytes.len()
        )));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if word(0) != magic {
        return Err(bad(format!(
            "magic number {:#010x}, expected {magic:#010x} (is it gzipped?)",
            word(0)
        )));
    }
    let shape: Vec<usize> = (0..dims).map(|d| word(4 + 4 * d) as usize).collect();
    let expected: usize = shape.iter().product();
    let body = &bytes[header..];
    if body.len() != expected {
        return Err(bad(format!(
            "header says {expected} bytes of data ({shape:?}), file has {}",
            body.len()
        )));
    }
    if expected == 0 {
        return Err(bad("holds no examples".into()));
    }
    Ok((shape, body.to_vec()))
}

fn read_idx_images(path: &Path) -> Result<(Vec<u8>, usize, usize), DataError> {
    let (shape, body) = read_idx(path, 0x0000_0803, 3)?;
    Ok((body, shape[1], shape[2]))
}

fn read_idx_labels(path: &Path) -> Result<Vec<i64>, DataError> {
    let (_, body) = read_idx(path, 0x0000_0801, 1)?;
    Ok(body.into_iter().map(i64::from).collect())
}

/// Writes an IDX pair (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`) into `dir`:
/// used by tests and handy for making small data sets.
pub fn write_idx(
    dir: &Path,
    prefix: &str,
    images: &[u8],
    side: (usize, usize),
    labels: &[u8],
) -> std::io::Result<()> {
    let mut img = Vec::with_capacity(16 + images.len());
    img.extend_from_slice(&0x0000_0803u32.to_be_bytes());
    for d in [labels.len(), side.0, side.1] {
        img.extend_from_slice(&(d as u32).to_be_bytes());
    }
    img.extend_from_slice(images);
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), img)?;
    let mut lab = Vec::with_capacity(8 + labels.len());
    lab.extend_from_slice(&0x0000_0801u32.to_be_bytes());
    lab.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    lab.extend_from_slice(labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lab)
}

/// Takes the examples at `indices` (one gather), used to shuffle once per epoch.
pub fn gather(x: &Tensor, indices: &[i64]) -> Tensor {
    x.index_select(0, &Tensor::from_slice(indices).to_kind(Kind::Int64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_sets_are_seeded_and_shaped() {
        for spec in [
            DataSpec::Digits,
            DataSpec::Spirals,
            DataSpec::Moons,
            DataSpec::Blobs,
            DataSpec::Xor,
        ] {
            let a = Dataset::load(&spec, 3).unwrap();
            let b = Dataset::load(&spec, 3).unwrap();
            let c = Dataset::load(&spec, 4).unwrap();
            assert!(
                a.train_x.equal(&b.train_x) && a.train_y.equal(&b.train_y),
                "{spec}"
            );
            assert!(!a.train_x.equal(&c.train_x), "{spec}: seed must matter");
            assert_eq!(a.train_x.size()[0], a.train_y.size()[0]);
            assert!(a.test_x.size()[0] > 0);
            let max_label = a.train_y.max().int64_value(&[]);
            assert_eq!(max_label as usize, a.classes - 1, "{spec}");
        }
        let d = Dataset::load(&DataSpec::Digits, 0).unwrap();
        assert_eq!(
            (d.features(), d.classes, d.image),
            (784, 10, Some((28, 28)))
        );
    }

    #[test]
    fn data_spec_parses_and_rejects() {
        assert_eq!(
            "idx:/tmp/x".parse::<DataSpec>().unwrap(),
            DataSpec::Idx("/tmp/x".into())
        );
        let err = "mnist".parse::<DataSpec>().unwrap_err();
        assert!(err.contains("idx:DIR"), "{err}");
        assert!("idx:".parse::<DataSpec>().is_err());
    }

    #[test]
    fn idx_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let images: Vec<u8> = (0..(14 * 8 * 8)).map(|i| (i % 256) as u8).collect();
        let labels: Vec<u8> = (0..14).map(|i| (i % 3) as u8).collect();
        write_idx(dir.path(), "train", &images, (8, 8), &labels).unwrap();
        let set = Dataset::load(&DataSpec::Idx(dir.path().into()), 0).unwrap();
        assert_eq!(
            (set.features(), set.classes, set.image),
            (64, 3, Some((8, 8)))
        );
        assert_eq!(set.len() + set.test_x.size()[0] as usize, 14);
        assert!((set.train_x.double_value(&[0, 1]) - 1.0 / 255.0).abs() < 1e-6);

        let err = Dataset::load(&DataSpec::Idx(dir.path().join("nope")), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("nope") && err.contains("no such folder"),
            "{err}"
        );

        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            [0u8, 0, 8, 1, 0, 0, 0, 5, 1],
        )
        .unwrap();
        let err = Dataset::load(&DataSpec::Idx(dir.path().into()), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte") && err.contains("header says 5"),
            "{err}"
        );

        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            [0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
        )
        .unwrap();
        let err = Dataset::load(&DataSpec::Idx(dir.path().into()), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("magic number"), "{err}");

        let empty = tempfile::tempdir().unwrap();
        let err = Dataset::load(&DataSpec::Idx(empty.path().into()), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no images-idx3 file"), "{err}");
    }
}
