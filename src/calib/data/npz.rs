//! The `kind: npz` form: a numpy `.npz` archive holding one array per model input (input name →
//! `[N, sample...]`), every array streamed straight out of the archive.
//!
//! Owns: finding each input's entry (`<name>.npy`, as `np.savez` writes it) and reading it in
//! place: a stored entry (`np.savez`) is read from its offset in the file, a deflated one
//! (`np.savez_compressed`) through a streaming inflater, so neither is ever held whole.
//! Does not own: the `.npy` format (`super::npy`) nor batching ([`super`]).
//!
//! ndarray-npy's `NpzReader` only returns whole arrays, so the archive's directory is read with
//! the `zip` crate and each entry's bytes are streamed from a file handle of their own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::DeflateDecoder;
use zip::{CompressionMethod, ZipArchive};

use super::npy::{NpyHeader, NpyStream};
use super::{DataError, ModelInput, SampleReader, sample_count};
use crate::graph::Tensor;

/// Where an entry's bytes lie in the archive and how they are stored.
struct EntryLocation {
    name: String,
    data_start: u64,
    compressed_size: u64,
    deflated: bool,
}

/// The arrays of an `.npz` archive for each model input, streamed.
pub struct NpzSamples {
    streams: Vec<(String, NpyStream<Box<dyn Read + Send>>)>,
    samples: usize,
}

impl NpzSamples {
    /// Opens `path`, finds an array for every input and checks its header against the input.
    pub fn open(path: &Path, inputs: &[ModelInput]) -> Result<Self, DataError> {
        let zip_error = |source| DataError::Zip {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(DataError::io(path))?;
        let mut archive = ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
        let mut streams = Vec::with_capacity(inputs.len());
        let mut first: Option<(&str, usize)> = None;
        for input in inputs {
            let location = locate(&mut archive, path, &input.name)?;
            let origin = path.join(&location.name);
            let mut reader = open_entry(path, &location)?;
            let header = NpyHeader::read(&mut reader, &origin)?;
            let count = sample_count(&origin, input, header.dtype, &header.shape, false)?;
            if let Some((first_name, first_count)) = first
                && first_count != count
            {
                return Err(DataError::SampleCountMismatch {
                    path: path.to_path_buf(),
                    first: first_name.to_owned(),
                    first_count,
                    other: input.name.clone(),
                    other_count: count,
                });
            }
            first.get_or_insert((&input.name, count));
            let sample = header.shape.get(1..).unwrap_or_default().to_vec();
            let stream = NpyStream::new(reader, &origin, &header, count, sample)?;
            streams.push((input.name.clone(), stream));
        }
        Ok(Self {
            streams,
            samples: first.map_or(0, |(_, count)| count),
        })
    }

    /// Samples in the archive (every input's array holds this many).
    pub fn len(&self) -> usize {
        self.samples
    }
}

impl SampleReader for NpzSamples {
    fn skip(&mut self, count: usize) -> Result<(), DataError> {
        self.streams
            .iter_mut()
            .try_for_each(|(_, stream)| stream.skip(count))
    }

    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError> {
        self.streams
            .iter_mut()
            .map(|(name, stream)| Ok((name.clone(), stream.read(count)?)))
            .collect()
    }
}

/// Finds the entry of `input` (`<input>.npy`, or `<input>` as written by other tools).
fn locate(
    archive: &mut ZipArchive<BufReader<File>>,
    path: &Path,
    input: &str,
) -> Result<EntryLocation, DataError> {
    let with_suffix = format!("{input}.npy");
    let Some(name) = [with_suffix.as_str(), input]
        .into_iter()
        .find(|name| archive.index_for_name(name).is_some())
        .map(str::to_owned)
    else {
        return Err(DataError::MissingArray {
            path: path.to_path_buf(),
            input: input.to_owned(),
            available: archive
                .file_names()
                .map(|name| name.strip_suffix(".npy").unwrap_or(name).to_owned())
                .collect(),
        });
    };
    let entry = archive.by_name(&name).map_err(|source| DataError::Zip {
        path: path.to_path_buf(),
        source,
    })?;
    let unsupported = |what: String| DataError::UnsupportedNpy {
        path: path.join(&name),
        what,
        hint: "write the archive with np.savez or np.savez_compressed",
    };
    if entry.encrypted() {
        return Err(unsupported("an encrypted entry".to_owned()));
    }
    let deflated = match entry.compression() {
        CompressionMethod::Stored => false,
        CompressionMethod::Deflated => true,
        other => return Err(unsupported(format!("compression {other}"))),
    };
    Ok(EntryLocation {
        data_start: entry.data_start(),
        compressed_size: entry.compressed_size(),
        deflated,
        name,
    })
}

/// A reader of one entry's (decompressed) bytes, on a file handle of its own.
fn open_entry(path: &Path, location: &EntryLocation) -> Result<Box<dyn Read + Send>, DataError> {
    let mut file = File::open(path).map_err(DataError::io(path))?;
    file.seek(SeekFrom::Start(location.data_start))
        .map_err(DataError::io(path))?;
    let raw = BufReader::new(file).take(location.compressed_size);
    Ok(if location.deflated {
        Box::new(BufReader::new(DeflateDecoder::new(raw)))
    } else {
        Box::new(raw)
    })
}
