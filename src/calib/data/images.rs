//! The `kind: images` form: a folder of PNG/JPEG images for the model's only input, each
//! decoded and preprocessed into one sample.
//!
//! Owns: listing the folder (`.png`, `.jpg`, `.jpeg` in file name order; other files are
//! ignored), checking before anything runs that every image comes out at the model's input size
//! (only the image headers are read for that), and preprocessing, in this order:
//! 1. decode to 8-bit RGB (grayscale and alpha images are converted);
//! 2. resize with a bilinear (triangle) filter: `resize: N` scales the shorter side to N and the
//!    longer to `floor(long * N / short)` as torchvision does; `[h, w]` to exactly h×w; no
//!    `resize` to the model input's size; an image already at the target size is not resampled;
//! 3. center crop (offsets `round((size - crop) / 2)`, ties to even, as torchvision does);
//! 4. per channel in `color` order: `(pixel * scale - mean[c]) / std[c]`;
//! 5. laid out as `layout` (NCHW or NHWC) in `dtype`.
//!
//! Does not own: how the keys are written in the config ([`crate::config::ImageData`]) nor
//! batching ([`super`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::f16;
use image::imageops::{self, FilterType};
use image::{GenericImageView, ImageReader, RgbImage};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::npy::batch_dims;
use super::{DataError, ModelInput, SampleReader};
use crate::config::{ColorOrder, Extent, ImageData, InputDtype, Layout};
use crate::graph::Tensor;
use crate::onnx::proto::DataType;

/// The image extensions read (case-insensitive).
const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// An image size, width first as the `image` crate has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Size {
    width: u32,
    height: u32,
}

/// How each image becomes one sample of the input.
struct Preprocess {
    data: ImageData,
    input: String,
    model: Size,
}

impl Preprocess {
    /// Size after resizing an image of `size`.
    fn resized(&self, size: Size) -> Size {
        match self.data.resize {
            None => self.model,
            Some(Extent::HeightWidth(height, width)) => Size { width, height },
            Some(Extent::Side(side)) => {
                let scaled = |long: u32, short: u32| {
                    u32::try_from(u64::from(long) * u64::from(side) / u64::from(short.max(1)))
                        .unwrap_or(u32::MAX)
                };
                if size.width <= size.height {
                    Size {
                        width: side,
                        height: scaled(size.height, size.width),
                    }
                } else {
                    Size {
                        width: scaled(size.width, size.height),
                        height: side,
                    }
                }
            }
        }
    }

    /// The crop window (left, top, size) inside an image of `size`.
    fn crop_window(&self, size: Size) -> Option<(u32, u32, Size)> {
        let crop = match self.data.crop {
            None => return Some((0, 0, size)),
            Some(Extent::Side(side)) => Size {
                width: side,
                height: side,
            },
            Some(Extent::HeightWidth(height, width)) => Size { width, height },
        };
        let offset = |outer: u32, inner: u32| {
            outer
                .checked_sub(inner)
                .map(|spare| (f64::from(spare) / 2.0).round_ties_even() as u32)
        };
        Some((
            offset(size.width, crop.width)?,
            offset(size.height, crop.height)?,
            crop,
        ))
    }

    /// Checks that an image of `size` comes out at the model's size; returns the resized size
    /// and the crop window.
    fn geometry(&self, size: Size, path: &Path) -> Result<(Size, (u32, u32, Size)), DataError> {
        let resized = self.resized(size);
        let window = self.crop_window(resized);
        let out = window.map_or(resized, |(_, _, out)| out);
        match window {
            Some(window) if out == self.model => Ok((resized, window)),
            _ => Err(DataError::ImageGeometry {
                path: path.to_path_buf(),
                input: self.input.clone(),
                width: size.width,
                height: size.height,
                out_width: out.width,
                out_height: out.height,
                model_width: self.model.width,
                model_height: self.model.height,
            }),
        }
    }

    /// Decodes and preprocesses one image into `channels × height × width` values in the
    /// model's layout.
    fn sample(&self, path: &Path) -> Result<Vec<f32>, DataError> {
        let image_error = |source| DataError::Image {
            path: path.to_path_buf(),
            source,
        };
        let image = ImageReader::open(path)
            .map_err(DataError::io(path))?
            .with_guessed_format()
            .map_err(DataError::io(path))?
            .decode()
            .map_err(image_error)?
            .into_rgb8();
        let size = Size {
            width: image.width(),
            height: image.height(),
        };
        let (resized, (left, top, out)) = self.geometry(size, path)?;
        let image: RgbImage = if resized == size {
            image
        } else {
            imageops::resize(&image, resized.width, resized.height, FilterType::Triangle)
        };
        let source_channel = match self.data.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let (width, height) = (out.width as usize, out.height as usize);
        let mut values = vec![0f32; 3 * width * height];
        for (x, y, pixel) in imageops::crop_imm(&image, left, top, out.width, out.height).pixels() {
            let (x, y) = (x as usize, y as usize);
            for (channel, &source) in source_channel.iter().enumerate() {
                let value = (f32::from(pixel.0[source]) * self.data.scale
                    - self.data.mean[channel])
                    / self.data.std[channel];
                let index = match self.data.layout {
                    Layout::Nchw => (channel * height + y) * width + x,
                    Layout::Nhwc => (y * width + x) * 3 + channel,
                };
                values[index] = value;
            }
        }
        Ok(values)
    }
}

/// The images of a folder, decoded a batch at a time (in parallel within a batch).
pub struct ImageSamples {
    preprocess: Preprocess,
    sample_dims: Vec<usize>,
    files: Vec<PathBuf>,
    next: usize,
}

impl ImageSamples {
    /// Lists the images of `data.path`, checks the input's layout and dtype and every image's
    /// size after resize and crop.
    pub fn open(data: &ImageData, input: &ModelInput) -> Result<Self, DataError> {
        let dir = &data.path;
        let expected_dtype = match data.dtype {
            InputDtype::Float32 => DataType::Float,
            InputDtype::Float16 => DataType::Float16,
        };
        if input.dtype != expected_dtype {
            return Err(DataError::DtypeMismatch {
                path: dir.clone(),
                input: input.name.clone(),
                expected: input.dtype.as_str_name().to_owned(),
                found: format!("{} (the `dtype` key)", expected_dtype.as_str_name()),
            });
        }
        let sample_dims = input.sample_dims()?;
        let model = match (data.layout, sample_dims.as_slice()) {
            (Layout::Nchw, &[3, height, width]) | (Layout::Nhwc, &[height, width, 3]) => Size {
                width: u32::try_from(width).unwrap_or(u32::MAX),
                height: u32::try_from(height).unwrap_or(u32::MAX),
            },
            _ => {
                return Err(DataError::BadModelInput {
                    input: input.name.clone(),
                    reason: format!(
                        "shape {:?} is not a 3-channel image batch in layout {:?} \
                         ([N, 3, H, W] for NCHW, [N, H, W, 3] for NHWC)",
                        input.dims, data.layout
                    ),
                });
            }
        };
        let preprocess = Preprocess {
            data: data.clone(),
            input: input.name.clone(),
            model,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
            let path = entry.map_err(DataError::io(dir))?.path();
            let is_image = path.extension().is_some_and(|ext| {
                EXTENSIONS
                    .iter()
                    .any(|known| ext.eq_ignore_ascii_case(known))
            });
            if is_image && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        for path in &files {
            let (width, height) =
                image::image_dimensions(path).map_err(|source| DataError::Image {
                    path: path.clone(),
                    source,
                })?;
            preprocess.geometry(Size { width, height }, path)?;
        }
        Ok(Self {
            preprocess,
            sample_dims,
            files,
            next: 0,
        })
    }

    /// Images in the folder.
    pub fn len(&self) -> usize {
        self.files.len()
    }
}

impl SampleReader for ImageSamples {
    fn skip(&mut self, count: usize) -> Result<(), DataError> {
        self.next = self.next.saturating_add(count).min(self.files.len());
        Ok(())
    }

    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError> {
        let end = self.next.saturating_add(count).min(self.files.len());
        let files = self.files.get(self.next..end).unwrap_or_default();
        let samples = files
            .par_iter()
            .map(|path| self.preprocess.sample(path))
            .collect::<Result<Vec<_>, _>>()?;
        self.next = end;
        let shape = IxDyn(&batch_dims(samples.len(), &self.sample_dims));
        let values = samples.concat();
        let mismatch = |error: ndarray::ShapeError| DataError::BadModelInput {
            input: self.preprocess.input.clone(),
            reason: format!("preprocessed images do not fill shape {shape:?}: {error}"),
        };
        let tensor = match self.preprocess.data.dtype {
            InputDtype::Float32 => {
                Tensor::F32(ArrayD::from_shape_vec(shape.clone(), values).map_err(mismatch)?)
            }
            InputDtype::Float16 => Tensor::F16(
                ArrayD::from_shape_vec(
                    shape.clone(),
                    values.into_iter().map(f16::from_f32).collect(),
                )
                .map_err(mismatch)?,
            ),
        };
        Ok(HashMap::from([(self.preprocess.input.clone(), tensor)]))
    }
}
