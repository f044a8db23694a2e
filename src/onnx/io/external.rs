//! Reading external data (`data_location: EXTERNAL`) at load time.
//!
//! Owns: validating a tensor's `location` (relative, no `..`, inside the model's folder after
//! every symbolic link is followed, an existing regular file), mapping each external file once,
//! and slicing `offset`/`length` out of it so that `raw_data` points into the mapping without a
//! copy. After [`ExternalReader::resolve`], the tensor holds its bytes in `raw_data`, its
//! `data_location` is absent (which means DEFAULT; onnx's loader writes DEFAULT explicitly, we
//! leave it out so that a model saved with external data loads back equal to what was saved) and
//! its `external_data` entries are gone. The `checksum` entry is not verified. Does not own: writing external data
//! (see `save`), nor finding the tensors (see `tensors`).

use std::collections::HashMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;

use super::error::{ExternalDataProblem, OnnxError};
use super::load::map_file;
use super::tensors::TensorSite;
use crate::onnx::proto::{DataLocation, StringStringEntryProto, TensorProto};

/// Follows the external data references of one model file.
pub(crate) struct ExternalReader<'a> {
    /// The model file, as the caller named it (for messages).
    model: &'a Path,
    /// The model's folder with symbolic links followed; computed on the first reference.
    folder: Option<PathBuf>,
    /// Each external file mapped so far, by its resolved path.
    files: HashMap<PathBuf, Bytes>,
    /// The keys of `files` in first-use order.
    order: Vec<PathBuf>,
}

/// The `external_data` entries of one tensor, parsed.
struct Reference<'t> {
    location: &'t str,
    offset: u64,
    length: Option<u64>,
}

impl<'a> ExternalReader<'a> {
    /// A reader for the references of the model stored at `model`.
    pub(crate) fn new(model: &'a Path) -> Self {
        Self {
            model,
            folder: None,
            files: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// The external files read, with symbolic links followed, in first-use order.
    pub(crate) fn into_files(self) -> Vec<PathBuf> {
        self.order
    }

    /// Reads `tensor`'s data in if it is stored externally; leaves other tensors untouched.
    pub(crate) fn resolve(
        &mut self,
        site: &TensorSite<'_>,
        tensor: &mut TensorProto,
    ) -> Result<(), OnnxError> {
        if tensor.data_location != Some(DataLocation::External as i32) {
            return Ok(());
        }
        let data = self
            .read(&tensor.external_data)
            .map_err(|(location, problem)| OnnxError::ExternalData {
                model: self.model.to_path_buf(),
                tensor: site.describe(tensor),
                location,
                problem: Box::new(problem),
            })?;
        tensor.raw_data = Some(data);
        tensor.data_location = None;
        tensor.external_data.clear();
        Ok(())
    }

    /// The bytes a reference points to; on failure, the location as written and the problem.
    fn read(
        &mut self,
        entries: &[StringStringEntryProto],
    ) -> Result<Bytes, (String, ExternalDataProblem)> {
        let reference = Reference::parse(entries)?;
        let fail = |problem| (reference.location.to_owned(), problem);
        let relative = check_relative(reference.location).map_err(fail)?;
        let (path, file) = self.file(relative).map_err(fail)?;
        let file_len = file.len() as u64;
        let end = match reference.length {
            Some(length) => reference.offset.saturating_add(length),
            None => file_len.max(reference.offset),
        };
        if reference.offset > file_len || end > file_len {
            return Err(fail(ExternalDataProblem::OutOfRange {
                path,
                offset: reference.offset,
                end,
                file_len,
            }));
        }
        // Both bounds are ≤ file_len, the length of an in-memory slice, so the casts are exact.
        Ok(file.slice(reference.offset as usize..end as usize))
    }

    /// The whole mapped file at `relative` (inside the model's folder), mapping it on first use.
    fn file(&mut self, relative: &Path) -> Result<(PathBuf, Bytes), ExternalDataProblem> {
        let folder = match &self.folder {
            Some(folder) => folder.clone(),
            None => {
                let parent = match self.model.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    _ => Path::new("."),
                };
                let folder =
                    parent
                        .canonicalize()
                        .map_err(|source| ExternalDataProblem::Unreadable {
                            path: parent.to_path_buf(),
                            source,
                        })?;
                self.folder = Some(folder.clone());
                folder
            }
        };
        let joined = folder.join(relative);
        let resolved = joined
            .canonicalize()
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => ExternalDataProblem::Missing {
                    path: joined.clone(),
                },
                _ => ExternalDataProblem::Unreadable {
                    path: joined.clone(),
                    source,
                },
            })?;
        if !resolved.starts_with(&folder) {
            return Err(ExternalDataProblem::Escapes { resolved, folder });
        }
        if let Some(bytes) = self.files.get(&resolved) {
            return Ok((resolved, bytes.clone()));
        }
        let bytes = map_file(&resolved).map_err(|source| ExternalDataProblem::Unreadable {
            path: resolved.clone(),
            source,
        })?;
        self.files.insert(resolved.clone(), bytes.clone());
        self.order.push(resolved.clone());
        Ok((resolved, bytes))
    }
}

impl<'t> Reference<'t> {
    /// Reads `location`, `offset` and `length` from the entries (later duplicates win, as in onnx).
    fn parse(entries: &'t [StringStringEntryProto]) -> Result<Self, (String, ExternalDataProblem)> {
        let mut location = None;
        let mut offset = None;
        let mut length = None;
        for entry in entries {
            let value = entry.value.as_deref().unwrap_or("");
            match entry.key.as_deref() {
                Some("location") => location = Some(value),
                Some("offset") => offset = Some(value),
                Some("length") => length = Some(value),
                _ => {}
            }
        }
        let location = match location {
            Some(location) if !location.is_empty() => location,
            _ => return Err((String::new(), ExternalDataProblem::NoLocation)),
        };
        let number = |key: &'static str, value: &str| {
            value.parse::<u64>().map_err(|_| {
                (
                    location.to_owned(),
                    ExternalDataProblem::BadNumber {
                        key,
                        value: value.to_owned(),
                    },
                )
            })
        };
        Ok(Self {
            location,
            offset: offset
                .map(|v| number("offset", v))
                .transpose()?
                .unwrap_or(0),
            length: length.map(|v| number("length", v)).transpose()?,
        })
    }
}

/// `location` as a relative path with no `..`, or why it is refused.
fn check_relative(location: &str) -> Result<&Path, ExternalDataProblem> {
    let path = Path::new(location);
    for component in path.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(ExternalDataProblem::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(ExternalDataProblem::Absolute),
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_locations_pass_and_escaping_ones_are_refused() {
        assert!(check_relative("weights.bin").is_ok());
        assert!(check_relative("./sub/weights.bin").is_ok());
        assert!(matches!(
            check_relative("/etc/passwd"),
            Err(ExternalDataProblem::Absolute)
        ));
        assert!(matches!(
            check_relative("sub/../../x"),
            Err(ExternalDataProblem::ParentDir)
        ));
        assert!(matches!(
            check_relative(".."),
            Err(ExternalDataProblem::ParentDir)
        ));
    }

    fn entry(key: &str, value: &str) -> StringStringEntryProto {
        StringStringEntryProto {
            key: Some(key.to_owned()),
            value: Some(value.to_owned()),
        }
    }

    #[test]
    fn reference_entries_parse_and_bad_numbers_are_refused() {
        let entries = [
            entry("location", "w.bin"),
            entry("offset", "4096"),
            entry("length", "12"),
            entry("checksum", "ignored"),
        ];
        let reference = Reference::parse(&entries).unwrap();
        assert_eq!(
            (reference.location, reference.offset, reference.length),
            ("w.bin", 4096, Some(12))
        );
        let location_only = [entry("location", "w.bin")];
        let defaults = Reference::parse(&location_only).unwrap();
        assert_eq!((defaults.offset, defaults.length), (0, None));
        let negative = [entry("location", "w.bin"), entry("offset", "-1")];
        assert!(matches!(
            Reference::parse(&negative),
            Err((_, ExternalDataProblem::BadNumber { key: "offset", .. }))
        ));
        assert!(matches!(
            Reference::parse(&[entry("offset", "0")]),
            Err((_, ExternalDataProblem::NoLocation))
        ));
    }
}
