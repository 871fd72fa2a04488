//! The parts of TensorFlow's `Event`, `Summary` and `TensorProto` messages that scalars use,
//! written by hand with `prost`'s derive (field numbers from tensorflow/core/util/event.proto,
//! framework/summary.proto and framework/tensor.proto), so that no `protoc` runs at build time.
//! Fields not listed here are skipped by the decoder.

use prost::Message;

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `brain.Event:2` in a file's first record.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The summary values of this step.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag, e.g. `train/loss`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// TF1 scalar (`simple_value`).
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// TF2 value (a tensor; a scalar one for the scalars plugin).
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    /// Which plugin wrote the value (only on a tag's first value in a file, in TF2).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// The plugin.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// `DataClass`: 1 is scalar.
    #[prost(int32, tag = "4")]
    pub data_class: i32,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// e.g. `scalars`, `histograms`, `images`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
}

/// `tensorflow.TensorProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// `DataType`: see [`DT_FLOAT`], [`DT_DOUBLE`].
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape (absent or no dimensions for a scalar).
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
    /// The values as raw little-endian bytes (one way of storing them).
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// `float` values (the other way).
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `double` values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShape {
    /// The dimensions.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<TensorDim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorDim {
    /// Its size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `DataType.DT_FLOAT`.
pub const DT_FLOAT: i32 = 1;
/// `DataType.DT_DOUBLE`.
pub const DT_DOUBLE: i32 = 2;

impl TensorProto {
    /// The value of a one-element float or double tensor; `None` for anything else.
    pub fn scalar(&self) -> Option<f64> {
        let elements: i64 = self
            .tensor_shape
            .as_ref()
            .map_or(1, |s| s.dim.iter().map(|d| d.size).product());
        if elements != 1 {
            return None;
        }
        match self.dtype {
            DT_FLOAT => match (self.float_val.first(), self.tensor_content.as_slice()) {
                (Some(v), _) => Some(*v as f64),
                (None, [a, b, c, d]) => Some(f32::from_le_bytes([*a, *b, *c, *d]) as f64),
                _ => None,
            },
            DT_DOUBLE => match (self.double_val.first(), self.tensor_content.as_slice()) {
                (Some(v), _) => Some(*v),
                (None, bytes) if bytes.len() == 8 => {
                    Some(f64::from_le_bytes(bytes.try_into().ok()?))
                }
                _ => None,
            },
            _ => None,
        }
    }
}

impl SummaryValue {
    /// The plugin named in the value's metadata, if any.
    pub fn plugin(&self) -> Option<&str> {
        self.metadata
            .as_ref()?
            .plugin_data
            .as_ref()
            .map(|p| p.plugin_name.as_str())
    }
}

/// Decodes one record's data as an [`Event`].
pub fn decode_event(data: &[u8]) -> Result<Event, prost::DecodeError> {
    Event::decode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_read_from_every_tensor_form() {
        let shape = |dims: &[i64]| {
            Some(TensorShape {
                dim: dims.iter().map(|&size| TensorDim { size }).collect(),
            })
        };
        let t = |dtype, content: Vec<u8>, f: Vec<f32>, d: Vec<f64>, dims: &[i64]| TensorProto {
            dtype,
            tensor_shape: shape(dims),
            tensor_content: content,
            float_val: f,
            double_val: d,
        };
        assert_eq!(
            t(DT_FLOAT, vec![], vec![0.5], vec![], &[]).scalar(),
            Some(0.5)
        );
        let raw = 1.25f32.to_le_bytes().to_vec();
        assert_eq!(t(DT_FLOAT, raw, vec![], vec![], &[1]).scalar(), Some(1.25));
        assert_eq!(
            t(DT_DOUBLE, vec![], vec![], vec![0.1], &[]).scalar(),
            Some(0.1)
        );
        let raw = 0.3f64.to_le_bytes().to_vec();
        assert_eq!(t(DT_DOUBLE, raw, vec![], vec![], &[]).scalar(), Some(0.3));
        assert_eq!(
            t(DT_FLOAT, vec![], vec![1.0, 2.0], vec![], &[2]).scalar(),
            None
        );
        assert_eq!(t(3, vec![], vec![], vec![], &[]).scalar(), None, "int32");
    }

    #[test]
    fn an_event_round_trips_through_the_wire_form() {
        let e = Event {
            wall_time: 1.5,
            step: 7,
            file_version: None,
            summary: Some(Summary {
                value: vec![SummaryValue {
                    tag: "loss".into(),
                    simple_value: Some(0.25),
                    tensor: None,
                    metadata: None,
                }],
            }),
        };
        assert_eq!(decode_event(&e.encode_to_vec()).unwrap(), e);
    }
}
