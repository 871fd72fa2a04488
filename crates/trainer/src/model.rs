//! The models the trainer builds: the seed's MLP (widths configurable) and a small CNN.
//!
//! Each model names its layers and hands out their parameters grouped per layer, which is
//! what gradient statistics are reported on.

use std::fmt;
use std::str::FromStr;

use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// Which model to build (`--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// Fully connected, ReLU (or `--activation`) between layers: input, the hidden widths,
    /// classes.
    Mlp,
    /// Two 3x3 conv + max-pool blocks, then two fully connected layers (image data only).
    Cnn,
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mlp" => Ok(ModelKind::Mlp),
            "cnn" => Ok(ModelKind::Cnn),
            _ => Err(format!("unknown model `{s}`: expected mlp or cnn")),
        }
    }
}

/// The nonlinearity between the MLP's layers (`--activation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x): the seed's choice.
    #[default]
    Relu,
    /// 1 / (1 + e^-x): saturates, so deep stacks of it starve early layers of gradient.
    Sigmoid,
    /// tanh(x).
    Tanh,
}

impl Activation {
    fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        })
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            _ => Err(format!(
                "unknown activation `{s}`: expected relu, sigmoid or tanh"
            )),
        }
    }
}

/// How the model is built beyond its kind and widths.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelOptions {
    /// Nonlinearity between the MLP's layers (the CNN always uses ReLU).
    pub activation: Activation,
    /// Every bias starts at this value instead of libtorch's default (uniform) init.
    pub init_bias: Option<f64>,
}

/// A layer's name and its parameters (weight, then bias).
pub struct LayerParams {
    /// Layer name, e.g. `fc1`.
    pub name: String,
    /// Its trainable tensors (shallow handles sharing the model's storage).
    pub params: Vec<Tensor>,
}

/// A built model: its variables, its layers and its forward pass.
pub struct Model {
    /// Owns every trainable tensor.
    pub vars: nn::VarStore,
    /// Layers in order from the input.
    pub layers: Vec<LayerParams>,
    /// Short description, e.g. `mlp 784-256-128-64-10`.
    pub description: String,
    net: Box<dyn Module>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Why a model could not be built for the data.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The CNN needs image-shaped input.
    #[error(
        "--model cnn needs image data (digits or idx:DIR); this data set has {0} plain features"
    )]
    CnnNeedsImages(usize),
    /// A hidden width of zero.
    #[error("--hidden widths must be positive, got {0:?}")]
    BadWidths(Vec<usize>),
    /// A bias init that is not a number.
    #[error("--init-bias must be a finite number, got {0}")]
    BadBias(f64),
}

impl Model {
    /// Builds a model for `features` inputs and `classes` outputs on `device`.
    pub fn build(
        kind: ModelKind,
        hidden: &[usize],
        features: usize,
        classes: usize,
        image: Option<(usize, usize)>,
        device: Device,
        options: ModelOptions,
    ) -> Result<Model, ModelError> {
        if let Some(b) = options.init_bias {
            if !b.is_finite() {
                return Err(ModelError::BadBias(b));
            }
        }
        let mut model = match kind {
            ModelKind::Mlp => Self::mlp(hidden, features, classes, device, options.activation)?,
            ModelKind::Cnn => {
                let (h, w) = image.ok_or(ModelError::CnnNeedsImages(features))?;
                Self::cnn(h, w, classes, device)
            }
        };
        if let Some(b) = options.init_bias {
            tch::no_grad(|| {
                for layer in &model.layers {
                    if let Some(bias) = layer.params.get(1) {
                        let mut bias = bias.shallow_clone();
                        let _ = bias.fill_(b);
                    }
                }
            });
            model.description.push_str(&format!(" bias={b}"));
        }
        Ok(model)
    }

    fn mlp(
        hidden: &[usize],
        features: usize,
        classes: usize,
        device: Device,
        activation: Activation,
    ) -> Result<Model, ModelError> {
        if hidden.contains(&0) {
            return Err(ModelError::BadWidths(hidden.to_vec()));
        }
        let vars = nn::VarStore::new(device);
        let root = vars.root();
        let mut widths = vec![features];
        widths.extend_from_slice(hidden);
        widths.push(classes);
        let mut seq = nn::seq();
        let mut layers = Vec::new();
        for (i, pair) in widths.windows(2).enumerate() {
            let name = format!("fc{}", i + 1);
            let linear = nn::linear(
                &root / name.as_str(),
                pair[0] as i64,
                pair[1] as i64,
                Default::default(),
            );
            layers.push(linear_params(&name, &linear));
            seq = seq.add(linear);
            if i + 2 < widths.len() {
                seq = seq.add_fn(move |x| activation.apply(x));
            }
        }
        let mut description = format!(
            "mlp {}",
            widths
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join("-")
        );
        if activation != Activation::Relu {
            description.push_str(&format!(" {activation}"));
        }
        Ok(Model {
            vars,
            layers,
            description,
            net: Box::new(seq),
        })
    }

    fn cnn(h: usize, w: usize, classes: usize, device: Device) -> Model {
        let vars = nn::VarStore::new(device);
        let root = vars.root();
        let conv_cfg = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let conv1 = nn::conv2d(&root / "conv1", 1, 8, 3, conv_cfg);
        let conv2 = nn::conv2d(&root / "conv2", 8, 16, 3, conv_cfg);
        let flat = 16 * (h / 4).max(1) * (w / 4).max(1);
        let fc1 = nn::linear(&root / "fc1", flat as i64, 64, Default::default());
        let fc2 = nn::linear(&root / "fc2", 64, classes as i64, Default::default());
        let layers = vec![
            conv_params("conv1", &conv1),
            conv_params("conv2", &conv2),
            linear_params("fc1", &fc1),
            linear_params("fc2", &fc2),
        ];
        let (h, w) = (h as i64, w as i64);
        let net = nn::seq()
            .add_fn(move |x| x.view([-1, 1, h, w]))
            .add(conv1)
            .add_fn(|x| x.relu().max_pool2d_default(2))
            .add(conv2)
            .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
            .add(fc1)
            .add_fn(|x| x.relu())
            .add(fc2);
        let description = format!("cnn {h}x{w} conv8-conv16-fc64-{classes}");
        Model {
            vars,
            layers,
            description,
            net: Box::new(net),
        }
    }

    /// Logits for a batch of inputs.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.net.forward(x)
    }

    /// Layer names in order.
    pub fn layer_names(&self) -> Vec<String> {
        self.layers.iter().map(|l| l.name.clone()).collect()
    }
}

fn linear_params(name: &str, l: &nn::Linear) -> LayerParams {
    let mut params = vec![l.ws.shallow_clone()];
    params.extend(l.bs.as_ref().map(|b| b.shallow_clone()));
    LayerParams {
        name: name.to_string(),
        params,
    }
}

fn conv_params(name: &str, c: &nn::Conv2D) -> LayerParams {
    let mut params = vec![c.ws.shallow_clone()];
    params.extend(c.bs.as_ref().map(|b| b.shallow_clone()));
    LayerParams {
        name: name.to_string(),
        params,
    }
}
