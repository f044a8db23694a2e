//! The `.npy` format, streamed: header parsing (versions 1, 2 and 3) and a reader that yields
//! samples along the first axis a few at a time, never the whole array.
//!
//! Owns: the header (magic, version, the Python-literal dict with `descr`, `fortran_order`,
//! `shape`), the element types trtq reads (little-endian `f4`, `f8`, `f2`, `i1`, `u1`, `i4`, `i8`,
//! `b1`), decoding bytes into a [`Tensor`], and the `kind: npy` form ([`NpySamples`]).
//! Does not own: where the bytes come from beyond a `Read` (files here, `.npz` entries in
//! [`super::npz`]) nor how samples are batched ([`super`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use half::f16;
use ndarray::{ArrayD, IxDyn};

use super::{DataError, ModelInput, SampleReader, sample_count};
use crate::graph::Tensor;
use crate::onnx::proto::DataType;

const MAGIC: &[u8] = b"\x93NUMPY";
/// Headers longer than this are not `.npy` files (numpy itself caps them far lower).
const MAX_HEADER_LEN: usize = 1 << 20;

/// The parsed header of a `.npy` array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: DataType,
    /// Array shape.
    pub shape: Vec<usize>,
}

impl NpyHeader {
    /// Reads the header from the start of `reader`, leaving it at the first data byte.
    /// `origin` names the file (or archive entry) in errors.
    pub fn read(reader: &mut impl Read, origin: &Path) -> Result<NpyHeader, DataError> {
        let bad = |reason: &str| DataError::BadNpy {
            path: origin.to_path_buf(),
            reason: reason.to_owned(),
        };
        let mut preamble = [0u8; 8];
        read_exact_or(
            reader,
            &mut preamble,
            origin,
            "the file is shorter than a .npy header",
        )?;
        if &preamble[..6] != MAGIC {
            return Err(bad("it does not start with the .npy magic bytes"));
        }
        let header_len = match preamble[6] {
            1 => {
                let mut len = [0u8; 2];
                read_exact_or(reader, &mut len, origin, "truncated header length")?;
                usize::from(u16::from_le_bytes(len))
            }
            2 | 3 => {
                let mut len = [0u8; 4];
                read_exact_or(reader, &mut len, origin, "truncated header length")?;
                usize::try_from(u32::from_le_bytes(len)).unwrap_or(usize::MAX)
            }
            version => return Err(bad(&format!("unknown format version {version}"))),
        };
        if header_len > MAX_HEADER_LEN {
            return Err(bad(&format!("header of {header_len} bytes is too long")));
        }
        let mut text = vec![0u8; header_len];
        read_exact_or(reader, &mut text, origin, "truncated header")?;
        let text = String::from_utf8(text).map_err(|_| bad("the header is not UTF-8 text"))?;
        Self::parse(&text, origin)
    }

    /// Parses the header dict, e.g. `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    fn parse(text: &str, origin: &Path) -> Result<NpyHeader, DataError> {
        let bad = |reason: String| DataError::BadNpy {
            path: origin.to_path_buf(),
            reason,
        };
        let mut descr = None;
        let mut fortran_order = None;
        let mut shape = None;
        let mut lexer = Lexer::new(text);
        lexer.expect('{').map_err(&bad)?;
        while !lexer.eat('}') {
            let key = lexer.string().map_err(&bad)?;
            lexer.expect(':').map_err(&bad)?;
            match key.as_str() {
                "descr" => descr = Some(lexer.string().map_err(&bad)?),
                "fortran_order" => fortran_order = Some(lexer.boolean().map_err(&bad)?),
                "shape" => shape = Some(lexer.tuple().map_err(&bad)?),
                other => return Err(bad(format!("unexpected header key '{other}'"))),
            }
            if !lexer.eat(',') {
                lexer.expect('}').map_err(&bad)?;
                break;
            }
        }
        let descr = descr.ok_or_else(|| bad("the header has no 'descr'".to_owned()))?;
        let shape: Vec<usize> = shape.ok_or_else(|| bad("the header has no 'shape'".to_owned()))?;
        let dtype = dtype_of_descr(&descr).ok_or_else(|| DataError::UnsupportedNpy {
            path: origin.to_path_buf(),
            what: format!("element type '{descr}'"),
            hint: "save little-endian float32/float16/float64/int8/uint8/int32/int64/bool",
        })?;
        let non_unit_dims = shape.iter().filter(|&&dim| dim > 1).count();
        if fortran_order == Some(true) && non_unit_dims > 1 {
            return Err(DataError::UnsupportedNpy {
                path: origin.to_path_buf(),
                what: "Fortran (column-major) order".to_owned(),
                hint: "save `np.ascontiguousarray(a)` instead",
            });
        }
        Ok(NpyHeader { dtype, shape })
    }
}

/// The element type of a numpy `descr` trtq reads (little-endian or byte-order-free only).
fn dtype_of_descr(descr: &str) -> Option<DataType> {
    Some(match descr {
        "<f4" => DataType::Float,
        "<f8" => DataType::Double,
        "<f2" => DataType::Float16,
        "|i1" | "<i1" => DataType::Int8,
        "|u1" | "<u1" => DataType::Uint8,
        "<i4" => DataType::Int32,
        "<i8" => DataType::Int64,
        "|b1" | "<b1" => DataType::Bool,
        _ => return None,
    })
}

fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    origin: &Path,
    reason: &str,
) -> Result<(), DataError> {
    reader.read_exact(buf).map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => DataError::BadNpy {
            path: origin.to_path_buf(),
            reason: reason.to_owned(),
        },
        _ => DataError::Io {
            path: origin.to_path_buf(),
            source: error,
        },
    })
}

/// A tokenizer for the Python literals of a `.npy` header.
struct Lexer<'a> {
    rest: &'a str,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Self { rest: text }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// Consumes `token` if it comes next.
    fn eat(&mut self, token: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, token: char) -> Result<(), String> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(format!(
                "expected '{token}' in the header at '{}'",
                self.preview()
            ))
        }
    }

    fn preview(&self) -> String {
        self.rest.chars().take(20).collect()
    }

    /// A quoted string ('...' or "..."), without escapes (numpy never writes any here).
    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| format!("expected a quoted string at '{}'", self.preview()))?;
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| "unterminated string in the header".to_owned())?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(value);
            }
        }
        Err(format!("expected True or False at '{}'", self.preview()))
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(2, 3)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut items = Vec::new();
        while !self.eat(')') {
            self.skip_space();
            let digits = self.rest.len()
                - self
                    .rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            let number = self.rest[..digits]
                .parse::<usize>()
                .map_err(|_| format!("expected a dimension at '{}'", self.preview()))?;
            self.rest = &self.rest[digits..];
            items.push(number);
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(items)
    }
}

/// Bytes per element of the element types [`dtype_of_descr`] returns.
fn element_size(dtype: DataType) -> usize {
    dtype.byte_size().unwrap_or(1)
}

/// A `.npy` array read from its first axis on, `count` records at a time. A record is one
/// sample: the array's first axis, or (for a one-sample file in a folder) the whole array.
pub struct NpyStream<R> {
    reader: R,
    origin: PathBuf,
    dtype: DataType,
    record_dims: Vec<usize>,
    record_bytes: usize,
    records_left: usize,
}

impl<R: Read> NpyStream<R> {
    /// Wraps `reader`, positioned at the first data byte of an array with this `header` holding
    /// `records` records of `record_dims` each.
    pub fn new(
        reader: R,
        origin: &Path,
        header: &NpyHeader,
        records: usize,
        record_dims: Vec<usize>,
    ) -> Result<Self, DataError> {
        let record_bytes = record_dims
            .iter()
            .try_fold(element_size(header.dtype), |acc, &dim| acc.checked_mul(dim))
            .ok_or_else(|| DataError::BadNpy {
                path: origin.to_path_buf(),
                reason: format!("shape {:?} is too large", header.shape),
            })?;
        Ok(Self {
            reader,
            origin: origin.to_path_buf(),
            dtype: header.dtype,
            record_dims,
            record_bytes,
            records_left: records,
        })
    }

    /// Records not yet read.
    pub fn records_left(&self) -> usize {
        self.records_left
    }

    /// Bytes of the records not yet read.
    pub fn bytes_left(&self) -> u64 {
        (self.records_left as u64).saturating_mul(self.record_bytes as u64)
    }

    /// Skips `count` records (at most those left).
    pub fn skip(&mut self, count: usize) -> Result<(), DataError> {
        let count = count.min(self.records_left);
        let bytes = (count as u64).saturating_mul(self.record_bytes as u64);
        let copied = std::io::copy(&mut (&mut self.reader).take(bytes), &mut std::io::sink())
            .map_err(DataError::io(&self.origin))?;
        if copied != bytes {
            return Err(self.truncated());
        }
        self.records_left -= count;
        Ok(())
    }

    /// Appends the raw bytes of the next `count` records (at most those left) to `out`.
    pub fn read_into(&mut self, count: usize, out: &mut Vec<u8>) -> Result<usize, DataError> {
        let count = count.min(self.records_left);
        let bytes = count.saturating_mul(self.record_bytes);
        let start = out.len();
        out.resize(start + bytes, 0);
        self.reader
            .read_exact(&mut out[start..])
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::UnexpectedEof => self.truncated(),
                _ => DataError::Io {
                    path: self.origin.clone(),
                    source: error,
                },
            })?;
        self.records_left -= count;
        Ok(count)
    }

    fn truncated(&self) -> DataError {
        DataError::BadNpy {
            path: self.origin.clone(),
            reason: "the data is shorter than its header's shape says".to_owned(),
        }
    }

    /// Reads the next `count` records as a tensor shaped `[count, record_dims...]`.
    pub fn read(&mut self, count: usize) -> Result<Tensor, DataError> {
        let mut bytes = Vec::new();
        let count = self.read_into(count, &mut bytes)?;
        decode(
            self.dtype,
            &bytes,
            &batch_dims(count, &self.record_dims),
            &self.origin,
        )
    }
}

/// `[count, sample...]`.
pub(crate) fn batch_dims(count: usize, sample: &[usize]) -> Vec<usize> {
    std::iter::once(count)
        .chain(sample.iter().copied())
        .collect()
}

/// Decodes little-endian bytes of `dtype` into a tensor of `shape`.
/// `origin` names the data in errors.
pub(crate) fn decode(
    dtype: DataType,
    bytes: &[u8],
    shape: &[usize],
    origin: &Path,
) -> Result<Tensor, DataError> {
    fn values<T, const N: usize>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|chunk| {
                let mut word = [0u8; N];
                word.copy_from_slice(chunk);
                from(word)
            })
            .collect()
    }
    let bad_shape = |error: ndarray::ShapeError| DataError::BadNpy {
        path: origin.to_path_buf(),
        reason: format!("decoded data does not fill shape {shape:?}: {error}"),
    };
    macro_rules! array {
        ($values:expr) => {
            ArrayD::from_shape_vec(IxDyn(shape), $values).map_err(bad_shape)?
        };
    }
    Ok(match dtype {
        DataType::Float => Tensor::F32(array!(values(bytes, f32::from_le_bytes))),
        DataType::Double => Tensor::F64(array!(values(bytes, f64::from_le_bytes))),
        DataType::Float16 => Tensor::F16(array!(values(bytes, |word: [u8; 2]| {
            f16::from_bits(u16::from_le_bytes(word))
        }))),
        DataType::Int8 => Tensor::I8(array!(values(bytes, i8::from_le_bytes))),
        DataType::Uint8 => Tensor::U8(array!(bytes.to_vec())),
        DataType::Int32 => Tensor::I32(array!(values(bytes, i32::from_le_bytes))),
        DataType::Int64 => Tensor::I64(array!(values(bytes, i64::from_le_bytes))),
        DataType::Bool => Tensor::Bool(array!(bytes.iter().map(|&b| b != 0).collect())),
        other => {
            return Err(DataError::UnsupportedNpy {
                path: origin.to_path_buf(),
                what: format!("element type {}", other.as_str_name()),
                hint: "trtq reads float32/float16/float64/int8/uint8/int32/int64/bool",
            });
        }
    })
}

/// The `kind: npy` form: one array `[N, sample...]` for the model's only input, streamed.
pub struct NpySamples {
    input: String,
    stream: NpyStream<BufReader<File>>,
}

impl NpySamples {
    /// Opens `path` and checks its header against `input`.
    pub fn open(path: &Path, input: &ModelInput) -> Result<Self, DataError> {
        let mut reader = BufReader::new(File::open(path).map_err(DataError::io(path))?);
        let header = NpyHeader::read(&mut reader, path)?;
        let records = sample_count(path, input, header.dtype, &header.shape, false)?;
        let sample = header.shape.get(1..).unwrap_or_default().to_vec();
        let data_start = reader.stream_position().map_err(DataError::io(path))?;
        let file_len = reader
            .get_ref()
            .metadata()
            .map_err(DataError::io(path))?
            .len();
        let stream = NpyStream::new(reader, path, &header, records, sample)?;
        if file_len < data_start.saturating_add(stream.bytes_left()) {
            return Err(stream.truncated());
        }
        Ok(Self {
            input: input.name.clone(),
            stream,
        })
    }

    /// Samples in the file.
    pub fn len(&self) -> usize {
        self.stream.records_left()
    }
}

/// The float32 input that the whole array in `path` feeds, samples along its first axis (so
/// `open` streams any `.npy` file without a model, e.g. for `trtq calib-amax`). A 0-d array has
/// no sample axis and is an error; a non-float32 array fails when opened, naming its type.
pub fn array_input(path: &Path) -> Result<ModelInput, DataError> {
    let mut reader = BufReader::new(File::open(path).map_err(DataError::io(path))?);
    let header = NpyHeader::read(&mut reader, path)?;
    let sample = header.shape.get(1..).ok_or_else(|| DataError::BadNpy {
        path: path.to_path_buf(),
        reason: "a 0-d array has no first axis to take samples along".to_owned(),
    })?;
    let mut dims = vec![-1];
    for &dim in sample {
        dims.push(i64::try_from(dim).map_err(|_| DataError::BadNpy {
            path: path.to_path_buf(),
            reason: format!("dimension {dim} is too large"),
        })?);
    }
    Ok(ModelInput {
        name: path.display().to_string(),
        dtype: DataType::Float,
        dims,
    })
}

impl SampleReader for NpySamples {
    fn skip(&mut self, count: usize) -> Result<(), DataError> {
        self.stream.skip(count)
    }

    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError> {
        Ok(HashMap::from([(
            self.input.clone(),
            self.stream.read(count)?,
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NpyHeader, DataError> {
        NpyHeader::parse(text, Path::new("x.npy"))
    }

    #[test]
    fn parses_numpy_headers() {
        let header =
            parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }    \n").unwrap();
        assert_eq!(header.dtype, DataType::Float);
        assert_eq!(header.shape, vec![2, 3]);
        assert_eq!(
            parse("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }")
                .unwrap()
                .shape,
            vec![5]
        );
        assert_eq!(
            parse("{\"descr\":\"<i8\",\"fortran_order\":True,\"shape\":()}")
                .unwrap()
                .shape,
            Vec::<usize>::new()
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!(
            parse("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }"),
            Err(DataError::UnsupportedNpy { .. })
        ));
        assert!(matches!(
            parse("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"),
            Err(DataError::UnsupportedNpy { .. })
        ));
        for broken in [
            "",
            "{'descr': '<f4'",
            "{'shape': (2, x)}",
            "{'descr: '<f4'}",
            "{'shape': (2,)}",
        ] {
            assert!(
                matches!(parse(broken), Err(DataError::BadNpy { .. })),
                "{broken}"
            );
        }
    }
}
