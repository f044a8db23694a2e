//! The `kind: npy_dir` form: a folder of `.npy` files for the model's only input, read in file
//! name order, each file holding one sample (`sample` shape) or several (`[k, sample...]`).
//!
//! Owns: listing the folder, checking every file's header before anything runs, and reading
//! across file boundaries so a batch may span files. Only one file is open at a time and it is
//! streamed like a single `.npy`, so a large file costs no more memory than a small one.
//! Does not own: the `.npy` format (`super::npy`) nor batching ([`super`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::npy::{NpyHeader, NpyStream, batch_dims, decode};
use super::{DataError, ModelInput, SampleReader, sample_count};
use crate::graph::Tensor;

/// One file of the folder, as checked when the folder was opened.
struct NpyFile {
    path: PathBuf,
    header: NpyHeader,
    samples: usize,
}

/// The files of a folder, streamed one after another.
pub struct NpyDirSamples {
    dir: PathBuf,
    input: ModelInput,
    sample_dims: Vec<usize>,
    files: Vec<NpyFile>,
    /// Index of the next file to open.
    next_file: usize,
    current: Option<NpyStream<BufReader<File>>>,
}

impl NpyDirSamples {
    /// Lists the `.npy` files of `dir` (name order) and checks each header against `input`.
    pub fn open(dir: &Path, input: &ModelInput) -> Result<Self, DataError> {
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
            let path = entry.map_err(DataError::io(dir))?.path();
            let is_npy = path
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("npy"));
            if is_npy && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let header = read_header(&path)?;
            let samples = sample_count(&path, input, header.dtype, &header.shape, true)?;
            files.push(NpyFile {
                path,
                header,
                samples,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            sample_dims: input.sample_dims()?,
            input: input.clone(),
            files,
            next_file: 0,
            current: None,
        })
    }

    /// Samples in all files.
    pub fn len(&self) -> usize {
        self.files.iter().map(|file| file.samples).sum()
    }

    /// The stream of the current file, opening the next one when the current is used up;
    /// `None` after the last file.
    fn stream(&mut self) -> Result<Option<&mut NpyStream<BufReader<File>>>, DataError> {
        if self
            .current
            .as_ref()
            .is_none_or(|stream| stream.records_left() == 0)
        {
            self.current = None;
            let Some(file) = self.files.get(self.next_file) else {
                return Ok(None);
            };
            self.next_file += 1;
            self.current = Some(self.open_file(file)?);
        }
        Ok(self.current.as_mut())
    }

    /// Opens a file for streaming, re-checking that its header is the one checked at open.
    fn open_file(&self, file: &NpyFile) -> Result<NpyStream<BufReader<File>>, DataError> {
        let mut reader = BufReader::new(File::open(&file.path).map_err(DataError::io(&file.path))?);
        let header = NpyHeader::read(&mut reader, &file.path)?;
        if header != file.header {
            return Err(DataError::BadNpy {
                path: file.path.clone(),
                reason: "the file changed while it was being read".to_owned(),
            });
        }
        NpyStream::new(
            reader,
            &file.path,
            &header,
            file.samples,
            self.sample_dims.clone(),
        )
    }
}

fn read_header(path: &Path) -> Result<NpyHeader, DataError> {
    let mut reader = BufReader::new(File::open(path).map_err(DataError::io(path))?);
    NpyHeader::read(&mut reader, path)
}

impl SampleReader for NpyDirSamples {
    fn skip(&mut self, mut count: usize) -> Result<(), DataError> {
        while count > 0 {
            // Whole files are passed over without opening them.
            if self.current.is_none()
                && let Some(file) = self.files.get(self.next_file)
                && file.samples <= count
            {
                count -= file.samples;
                self.next_file += 1;
                continue;
            }
            let Some(stream) = self.stream()? else {
                return Ok(());
            };
            let skipped = count.min(stream.records_left());
            stream.skip(skipped)?;
            count -= skipped;
            if stream.records_left() == 0 {
                self.current = None;
            }
        }
        Ok(())
    }

    fn read(&mut self, count: usize) -> Result<HashMap<String, Tensor>, DataError> {
        let mut bytes = Vec::new();
        let mut read = 0;
        while read < count {
            let Some(stream) = self.stream()? else { break };
            read += stream.read_into(count - read, &mut bytes)?;
        }
        let shape = batch_dims(read, &self.sample_dims);
        let tensor = decode(self.input.dtype, &bytes, &shape, &self.dir)?;
        Ok(HashMap::from([(self.input.name.clone(), tensor)]))
    }
}
