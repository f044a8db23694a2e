//! The data forms of `calibration.data` and `evaluation.data`.
//!
//! Owns how a data source is written in YAML (`{kind: npy, path}`, `{kind: images, ...}`,
//! `{kind: synthetic, seed}`, ...) and which keys each kind takes. Does not read any data: the
//! loaders in `calib` do.
//!
//! In YAML a source is one flat mapping whose `kind` selects the form. It is read through
//! [`DataSourceKeys`] (every key of every form, unknown keys rejected with their location) and
//! then checked into a [`DataSource`], so that a key given to the wrong kind is an error that
//! says which kinds take it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where samples come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "DataSourceKeys")]
pub enum DataSource {
    /// One `.npy` array, samples along its first axis, for a single-input model.
    Npy {
        /// The `.npy` file.
        path: PathBuf,
    },
    /// One `.npz` archive: input name → array, samples along the first axis.
    Npz {
        /// The `.npz` file.
        path: PathBuf,
    },
    /// A folder of `.npy` files, one sample (or batch) per file, read in name order.
    NpyDir {
        /// The folder.
        path: PathBuf,
    },
    /// A folder of PNG/JPEG images with preprocessing, for a single image input.
    Images(ImageData),
    /// Seeded uniform random values in [0, 1): scales only good for latency work.
    Synthetic {
        /// Seed of the random generator.
        seed: u64,
    },
}

impl Default for DataSource {
    fn default() -> Self {
        Self::Synthetic { seed: 0 }
    }
}

impl DataSource {
    /// The file or folder this source reads, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Npy { path } | Self::Npz { path } | Self::NpyDir { path } => Some(path),
            Self::Images(images) => Some(&images.path),
            Self::Synthetic { .. } => None,
        }
    }

    /// The file or folder this source reads, mutably (for path resolution).
    pub(crate) fn path_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            Self::Npy { path } | Self::Npz { path } | Self::NpyDir { path } => Some(path),
            Self::Images(images) => Some(&mut images.path),
            Self::Synthetic { .. } => None,
        }
    }
}

/// A folder of images and how each becomes an input tensor: resize, center crop, pixel values
/// times `scale`, then `(x - mean) / std` per channel, in `color` order and `layout`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageData {
    /// The folder of images.
    pub path: PathBuf,
    /// Resize first: `N` scales the shorter side to N (aspect kept), `[h, w]` to exactly h×w;
    /// `None` resizes to the model input's height and width.
    pub resize: Option<Extent>,
    /// Center crop after resizing: `N` is N×N, `[h, w]` is h×w; `None` for no crop.
    pub crop: Option<Extent>,
    /// Per-channel mean subtracted after scaling, in `color` order.
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by after subtracting the mean, in `color` order.
    pub std: [f32; 3],
    /// Factor applied to 0..255 pixel values before mean/std (1/255 maps them to 0..1).
    pub scale: f32,
    /// Channel order the model expects.
    pub color: ColorOrder,
    /// Tensor layout the model expects.
    pub layout: Layout,
    /// Element type of the input tensor.
    pub dtype: InputDtype,
}

impl ImageData {
    /// Pixel scale used unless `scale` is given: 0..255 → 0..1.
    pub const DEFAULT_SCALE: f32 = 1.0 / 255.0;

    /// An image folder with every preprocessing key at its default.
    pub fn with_path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            resize: None,
            crop: None,
            mean: [0.0; 3],
            std: [1.0; 3],
            scale: Self::DEFAULT_SCALE,
            color: ColorOrder::Rgb,
            layout: Layout::Nchw,
            dtype: InputDtype::Float32,
        }
    }
}

/// An image size: one number, or `[height, width]` (positive: [`Config::validate`](super::Config::validate)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// One side length (its meaning depends on the key, see [`ImageData`]).
    Side(u32),
    /// Height and width.
    HeightWidth(u32, u32),
}

impl Extent {
    /// Whether every side is positive.
    pub fn is_positive(&self) -> bool {
        match *self {
            Self::Side(side) => side > 0,
            Self::HeightWidth(height, width) => height > 0 && width > 0,
        }
    }
}

impl Serialize for Extent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Side(side) => serializer.serialize_u32(side),
            Self::HeightWidth(height, width) => [height, width].serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Extent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExtentVisitor)
    }
}

struct ExtentVisitor;

impl ExtentVisitor {
    fn side<E: serde::de::Error>(&self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), self))
    }
}

impl<'de> serde::de::Visitor<'de> for ExtentVisitor {
    type Value = Extent;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a positive size N or [height, width]")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Extent, E> {
        self.side(v).map(Extent::Side)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Extent, E> {
        match u64::try_from(v) {
            Ok(unsigned) => self.visit_u64(unsigned),
            Err(_) => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Extent, A::Error> {
        use serde::de::Error;
        let height: u64 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let width: u64 = seq
            .next_element()?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::invalid_length(3, &self));
        }
        Ok(Extent::HeightWidth(self.side(height)?, self.side(width)?))
    }
}

/// Channel order of an image input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorOrder {
    /// Red, green, blue.
    #[default]
    #[serde(rename = "RGB")]
    Rgb,
    /// Blue, green, red (OpenCV and Caffe-trained models).
    #[serde(rename = "BGR")]
    Bgr,
}

/// Layout of an image input tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Batch, channel, height, width.
    #[default]
    #[serde(rename = "NCHW")]
    Nchw,
    /// Batch, height, width, channel.
    #[serde(rename = "NHWC")]
    Nhwc,
}

/// Element type of an image input tensor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputDtype {
    /// 32-bit float.
    #[default]
    Float32,
    /// 16-bit float.
    Float16,
}

/// The `kind` of a data source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DataKind {
    Npy,
    Npz,
    NpyDir,
    Images,
    Synthetic,
}

impl DataKind {
    fn name(self) -> &'static str {
        match self {
            Self::Npy => "npy",
            Self::Npz => "npz",
            Self::NpyDir => "npy_dir",
            Self::Images => "images",
            Self::Synthetic => "synthetic",
        }
    }
}

/// Every key any data form takes, as written; checked into a [`DataSource`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSourceKeys {
    kind: DataKind,
    path: Option<PathBuf>,
    seed: Option<u64>,
    resize: Option<Extent>,
    crop: Option<Extent>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    scale: Option<f32>,
    color: Option<ColorOrder>,
    layout: Option<Layout>,
    dtype: Option<InputDtype>,
}

impl DataSourceKeys {
    /// Names of the image-only keys that are set.
    fn image_keys_set(&self) -> Vec<&'static str> {
        [
            ("resize", self.resize.is_some()),
            ("crop", self.crop.is_some()),
            ("mean", self.mean.is_some()),
            ("std", self.std.is_some()),
            ("scale", self.scale.is_some()),
            ("color", self.color.is_some()),
            ("layout", self.layout.is_some()),
            ("dtype", self.dtype.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

impl TryFrom<DataSourceKeys> for DataSource {
    type Error = String;

    fn try_from(keys: DataSourceKeys) -> Result<Self, String> {
        let kind = keys.kind;
        if kind != DataKind::Images
            && let Some(key) = keys.image_keys_set().first()
        {
            return Err(format!(
                "`{key}` applies only to `kind: images`, not `kind: {}`",
                kind.name()
            ));
        }
        if kind != DataKind::Synthetic && keys.seed.is_some() {
            return Err(format!(
                "`seed` applies only to `kind: synthetic`, not `kind: {}`",
                kind.name()
            ));
        }
        let required_path = |path: Option<PathBuf>| {
            path.ok_or_else(|| {
                format!(
                    "`kind: {}` needs `path` (a file or folder, relative to this config)",
                    kind.name()
                )
            })
        };
        Ok(match kind {
            DataKind::Synthetic => {
                if keys.path.is_some() {
                    return Err("`kind: synthetic` reads no file: remove `path`".to_owned());
                }
                Self::Synthetic {
                    seed: keys.seed.unwrap_or(0),
                }
            }
            DataKind::Npy => Self::Npy {
                path: required_path(keys.path)?,
            },
            DataKind::Npz => Self::Npz {
                path: required_path(keys.path)?,
            },
            DataKind::NpyDir => Self::NpyDir {
                path: required_path(keys.path)?,
            },
            DataKind::Images => {
                let defaults = ImageData::with_path(required_path(keys.path)?);
                Self::Images(ImageData {
                    resize: keys.resize,
                    crop: keys.crop,
                    mean: keys.mean.unwrap_or(defaults.mean),
                    std: keys.std.unwrap_or(defaults.std),
                    scale: keys.scale.unwrap_or(defaults.scale),
                    color: keys.color.unwrap_or(defaults.color),
                    layout: keys.layout.unwrap_or(defaults.layout),
                    dtype: keys.dtype.unwrap_or(defaults.dtype),
                    ..defaults
                })
            }
        })
    }
}
