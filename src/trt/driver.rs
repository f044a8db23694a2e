//! The TensorRT driver: finds `trtexec`, reads its version, builds one engine variant from an ONNX
//! file with the flags trtq needs for verification, and loads the reports it wrote.
//!
//! Owns the trtexec command line (typing policy, shapes, workspace, builder optimization level,
//! timing cache, extra arguments), running it with a timeout while capturing its log, and the
//! typed errors of a failed build (missing binary, non-zero exit quoting the log's error lines,
//! timeout, a names-only report). Outputs are written under temporary names and renamed when
//! trtexec succeeds. It does not decide which variants to build or judge the engine (see
//! `crate::verify`).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::report::{EngineReport, ReportError};

/// How TensorRT picks layer precisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypingPolicy {
    /// `--stronglyTyped`: INT8 only where Q/DQ say so, float regions in the ONNX file's own type.
    /// The only mode of TensorRT 11.
    #[default]
    StronglyTyped,
    /// `--int8 --fp16`: TensorRT may pick INT8 or FP16 per layer (TensorRT <= 10).
    Weak,
    /// `--best`: TensorRT may pick any precision per layer (TensorRT <= 10).
    Best,
}

impl TypingPolicy {
    /// The trtexec flags of this policy.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            TypingPolicy::StronglyTyped => &["--stronglyTyped"],
            TypingPolicy::Weak => &["--int8", "--fp16"],
            TypingPolicy::Best => &["--best"],
        }
    }
}

/// A TensorRT version as trtexec reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrtVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl TrtVersion {
    /// Reads the version from trtexec output: the banner "[TensorRT v100300]" (8.x writes 8601
    /// for 8.6.1) or a line "TensorRT version: 10.3.0".
    pub fn from_log(log: &str) -> Option<TrtVersion> {
        log.lines()
            .find_map(|line| Self::from_banner(line).or_else(|| Self::from_version_line(line)))
    }

    fn from_banner(line: &str) -> Option<TrtVersion> {
        let start = line.find("[TensorRT v")? + "[TensorRT v".len();
        let digits = &line[start..line[start..].find(']')? + start];
        let number: u32 = digits.parse().ok()?;
        Some(if digits.len() >= 6 {
            TrtVersion {
                major: number / 10_000,
                minor: number / 100 % 100,
                patch: number % 100,
            }
        } else {
            TrtVersion {
                major: number / 1000,
                minor: number / 100 % 10,
                patch: number % 100,
            }
        })
    }

    fn from_version_line(line: &str) -> Option<TrtVersion> {
        let rest = line.split_once("TensorRT version:")?.1.trim();
        let mut parts = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|p| !p.is_empty());
        let mut next = || parts.next().and_then(|p| p.parse().ok());
        Some(TrtVersion {
            major: next()?,
            minor: next().unwrap_or(0),
            patch: next().unwrap_or(0),
        })
    }
}

impl std::fmt::Display for TrtVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Build settings shared by every variant of a run (the config's `tensorrt:` and `inputs:`).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSettings {
    /// Typing policy.
    pub typing: TypingPolicy,
    /// Concrete shapes for dynamic inputs, by input name.
    pub shapes: BTreeMap<String, Vec<usize>>,
    /// Builder workspace pool in MiB (`--memPoolSize=workspace:NM`).
    pub workspace_mib: Option<u64>,
    /// `--builderOptimizationLevel`.
    pub builder_optimization_level: Option<u8>,
    /// `--timingCacheFile` (shared between variants so they time kernels once).
    pub timing_cache: Option<PathBuf>,
    /// Extra arguments appended verbatim.
    pub extra_args: Vec<String>,
    /// Longest a build (with its profiling runs) may take.
    pub timeout: Duration,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            typing: TypingPolicy::default(),
            shapes: BTreeMap::new(),
            workspace_mib: Some(4096),
            builder_optimization_level: None,
            timing_cache: None,
            extra_args: Vec::new(),
            timeout: Duration::from_secs(3600),
        }
    }
}

/// The files one variant's build leaves in the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFiles {
    /// The serialized engine (`<variant>.engine`).
    pub engine: PathBuf,
    /// Layer information (`<variant>.layers.json`).
    pub layer_info: PathBuf,
    /// Per-layer profile (`<variant>.profile.json`).
    pub profile: PathBuf,
    /// Per-iteration timings (`<variant>.times.json`).
    pub times: PathBuf,
    /// trtexec's stdout and stderr (`<variant>.trtexec.log`).
    pub log: PathBuf,
}

impl EngineFiles {
    /// The file names of `variant` under `out_dir`.
    pub fn new(out_dir: &Path, variant: &str) -> EngineFiles {
        let file = |suffix: &str| out_dir.join(format!("{variant}.{suffix}"));
        EngineFiles {
            engine: file("engine"),
            layer_info: file("layers.json"),
            profile: file("profile.json"),
            times: file("times.json"),
            log: file("trtexec.log"),
        }
    }

    fn outputs(&self) -> [&Path; 4] {
        [&self.engine, &self.layer_info, &self.profile, &self.times]
    }
}

/// A built engine: where its files are, the command that built it, and its parsed report.
#[derive(Debug, Clone)]
pub struct EngineBuild {
    /// The files written.
    pub files: EngineFiles,
    /// trtexec's arguments (with the final file names).
    pub args: Vec<String>,
    /// The layer report with profile and latency attached.
    pub report: EngineReport,
}

/// Why a build could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// No trtexec where the config says, nor on PATH.
    #[error(
        "trtexec not found ({configured}): missing environment: install TensorRT and put trtexec on PATH, \
         or set tensorrt.trtexec to its path"
    )]
    NotFound {
        /// The configured name or path.
        configured: String,
    },
    /// trtexec could not be started.
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// trtexec's output named no TensorRT version.
    #[error(
        "{path} printed no TensorRT version (expected '[TensorRT v100300]'); first lines:\n{head}"
    )]
    UnknownVersion {
        /// The binary.
        path: PathBuf,
        /// The start of what it printed.
        head: String,
    },
    /// The typing policy does not exist in this TensorRT version.
    #[error("TensorRT {version} does not support typing '{typing:?}': {hint}")]
    TypingUnsupported {
        /// The TensorRT version.
        version: TrtVersion,
        /// The requested policy.
        typing: TypingPolicy,
        /// What to set instead.
        hint: &'static str,
    },
    /// trtexec exited with an error.
    #[error("trtexec failed building '{variant}' (exit status {status}); full log: {log}\n{}", relevant.join("\n"))]
    BuildFailed {
        /// The variant.
        variant: String,
        /// Exit code, or "signal" when killed by one.
        status: String,
        /// The log file.
        log: PathBuf,
        /// The log's error lines (`[E]`, `Error`), or its last lines when it has none.
        relevant: Vec<String>,
    },
    /// trtexec ran longer than the timeout and was killed.
    #[error(
        "trtexec building '{variant}' ran longer than {timeout:?} and was stopped; log so far: {log}"
    )]
    Timeout {
        /// The variant.
        variant: String,
        /// The limit.
        timeout: Duration,
        /// The log file.
        log: PathBuf,
    },
    /// trtexec succeeded but a file it should have written is missing.
    #[error("trtexec reported success but did not write {path}; see its log {log}")]
    MissingOutput {
        /// The missing file.
        path: PathBuf,
        /// The log file.
        log: PathBuf,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The report trtexec wrote could not be read (e.g. built without detailed verbosity).
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl DriverError {
    /// True when the error means TensorRT is not installed here (CLI exit code 3).
    pub fn is_missing_environment(&self) -> bool {
        matches!(self, DriverError::NotFound { .. })
    }

    /// The CLI exit code: 3 missing environment, 2 a setting this TensorRT cannot honour, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            DriverError::NotFound { .. } => 3,
            DriverError::TypingUnsupported { .. } => 2,
            _ => 1,
        }
    }
}

/// A located trtexec and its TensorRT version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trtexec {
    path: PathBuf,
    version: TrtVersion,
}

/// How long the version probe (`trtexec --help`) may take.
const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// Error lines quoted from a failed build's log, at most.
const MAX_QUOTED_LINES: usize = 20;

impl Trtexec {
    /// Finds `configured` (a path, or a name looked up on PATH) and reads its version.
    pub fn open(configured: &str) -> Result<Trtexec, DriverError> {
        let path = locate(configured)?;
        static PROBES: AtomicUsize = AtomicUsize::new(0);
        let probe = PROBES.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "trtq-trtexec-version-{}-{probe}.log",
            std::process::id()
        ));
        match run_logged(&path, ["--help"], &log, VERSION_PROBE_TIMEOUT) {
            // Some trtexec versions exit non-zero after --help; the banner is what matters.
            Ok(()) | Err(RunError::Exit(_)) => {}
            Err(RunError::Driver(err)) => return Err(err),
            Err(RunError::Timeout) => {
                return Err(DriverError::Timeout {
                    variant: "version probe (--help)".into(),
                    timeout: VERSION_PROBE_TIMEOUT,
                    log,
                });
            }
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // Best effort: the probe log is scratch output in the temp folder.
        let _ = std::fs::remove_file(&log);
        let version = TrtVersion::from_log(&text).ok_or_else(|| DriverError::UnknownVersion {
            path: path.clone(),
            head: text.lines().take(5).collect::<Vec<_>>().join("\n"),
        })?;
        Ok(Trtexec { path, version })
    }

    /// The binary's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its TensorRT version.
    pub fn version(&self) -> TrtVersion {
        self.version
    }

    /// trtexec's arguments for building `onnx` into `files` with `settings`.
    pub fn build_args(
        &self,
        onnx: &Path,
        files: &EngineFiles,
        settings: &BuildSettings,
    ) -> Result<Vec<String>, DriverError> {
        check_typing(self.version, settings.typing)?;
        let path = |p: &Path| p.display().to_string();
        let mut args = vec![
            format!("--onnx={}", path(onnx)),
            format!("--saveEngine={}", path(&files.engine)),
            "--profilingVerbosity=detailed".to_string(),
            format!("--exportLayerInfo={}", path(&files.layer_info)),
            format!("--exportProfile={}", path(&files.profile)),
            format!("--exportTimes={}", path(&files.times)),
            "--separateProfileRun".to_string(),
            "--noDataTransfers".to_string(),
            "--useCudaGraph".to_string(),
            "--useSpinWait".to_string(),
        ];
        args.extend(settings.typing.flags().iter().map(|flag| flag.to_string()));
        if !settings.shapes.is_empty() {
            args.push(format!("--shapes={}", shapes_arg(&settings.shapes)));
        }
        if let Some(mib) = settings.workspace_mib {
            args.push(format!("--memPoolSize=workspace:{mib}M"));
        }
        if let Some(level) = settings.builder_optimization_level {
            args.push(format!("--builderOptimizationLevel={level}"));
        }
        if let Some(cache) = &settings.timing_cache {
            args.push(format!("--timingCacheFile={}", path(cache)));
        }
        args.extend(settings.extra_args.iter().cloned());
        Ok(args)
    }

    /// Builds `onnx` as `variant` into `out_dir`, profiles it, and loads its reports.
    pub fn build(
        &self,
        onnx: &Path,
        out_dir: &Path,
        variant: &str,
        settings: &BuildSettings,
    ) -> Result<EngineBuild, DriverError> {
        let files = EngineFiles::new(out_dir, variant);
        let partial = partial_files(&files);
        let args = self.build_args(onnx, &files, settings)?;
        let partial_args = self.build_args(onnx, &partial, settings)?;
        std::fs::create_dir_all(out_dir).map_err(|source| DriverError::Io {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let outcome = run_logged(&self.path, &partial_args, &partial.log, settings.timeout);
        // The log is kept whatever happened; a failed build's partial outputs are not.
        rename(&partial.log, &files.log)?;
        if let Err(err) = outcome {
            remove_partials(&partial);
            return Err(match err {
                RunError::Driver(err) => err,
                RunError::Exit(status) => DriverError::BuildFailed {
                    variant: variant.to_string(),
                    status,
                    log: files.log.clone(),
                    relevant: relevant_log_lines(
                        &std::fs::read_to_string(&files.log).unwrap_or_default(),
                    ),
                },
                RunError::Timeout => DriverError::Timeout {
                    variant: variant.to_string(),
                    timeout: settings.timeout,
                    log: files.log.clone(),
                },
            });
        }
        for (from, to) in partial.outputs().into_iter().zip(files.outputs()) {
            if !from.is_file() {
                remove_partials(&partial);
                return Err(DriverError::MissingOutput {
                    path: to.to_path_buf(),
                    log: files.log.clone(),
                });
            }
            rename(from, to)?;
        }
        let report =
            EngineReport::load(&files.layer_info, Some(&files.profile), Some(&files.times))?;
        Ok(EngineBuild {
            files,
            args,
            report,
        })
    }
}

/// Finds trtexec: `configured` as a path when it names a folder, else on PATH.
pub fn locate(configured: &str) -> Result<PathBuf, DriverError> {
    let not_found = || DriverError::NotFound {
        configured: configured.to_string(),
    };
    let as_path = Path::new(configured);
    if as_path.components().count() > 1 || as_path.is_absolute() {
        return if is_executable(as_path) {
            Ok(as_path.to_path_buf())
        } else {
            Err(not_found())
        };
    }
    let path_var = std::env::var_os("PATH").ok_or_else(not_found)?;
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(configured))
        .find(|c| is_executable(c))
        .ok_or_else(not_found)
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

fn check_typing(version: TrtVersion, typing: TypingPolicy) -> Result<(), DriverError> {
    let hint = match typing {
        TypingPolicy::Weak | TypingPolicy::Best if version.major >= 11 => {
            "TensorRT 11 removed --int8/--fp16/--best: set tensorrt.typing: strongly-typed"
        }
        TypingPolicy::StronglyTyped if version.major < 9 => {
            "--stronglyTyped needs TensorRT 9 or newer: set tensorrt.typing: weak"
        }
        _ => return Ok(()),
    };
    Err(DriverError::TypingUnsupported {
        version,
        typing,
        hint,
    })
}

/// `name:1x3x224x224,other:1x10`; names holding ':' or ',' are quoted as trtexec expects.
fn shapes_arg(shapes: &BTreeMap<String, Vec<usize>>) -> String {
    shapes
        .iter()
        .map(|(name, dims)| {
            let name = if name.contains([':', ',']) {
                format!("'{name}'")
            } else {
                name.clone()
            };
            let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("{name}:{}", dims.join("x"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn partial_files(files: &EngineFiles) -> EngineFiles {
    let partial = |p: &Path| {
        let mut name = p.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    EngineFiles {
        engine: partial(&files.engine),
        layer_info: partial(&files.layer_info),
        profile: partial(&files.profile),
        times: partial(&files.times),
        log: partial(&files.log),
    }
}

fn remove_partials(partial: &EngineFiles) {
    for path in partial.outputs() {
        // Best effort: a partial output may not exist.
        let _ = std::fs::remove_file(path);
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), DriverError> {
    std::fs::rename(from, to).map_err(|source| DriverError::Io {
        path: to.to_path_buf(),
        source,
    })
}

enum RunError {
    Driver(DriverError),
    Exit(String),
    Timeout,
}

/// Runs `program` with stdout and stderr into `log`, killing it after `timeout`.
fn run_logged<I, S>(program: &Path, args: I, log: &Path, timeout: Duration) -> Result<(), RunError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let io = |source| {
        RunError::Driver(DriverError::Io {
            path: log.to_path_buf(),
            source,
        })
    };
    let out = File::create(log).map_err(io)?;
    let err = out.try_clone().map_err(io)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| {
            RunError::Driver(DriverError::Spawn {
                path: program.to_path_buf(),
                source,
            })
        })?;
    let started = Instant::now();
    loop {
        let polled = child.try_wait().map_err(|source| {
            RunError::Driver(DriverError::Spawn {
                path: program.to_path_buf(),
                source,
            })
        })?;
        if let Some(status) = polled {
            return match status.code() {
                Some(0) => Ok(()),
                Some(code) => Err(RunError::Exit(code.to_string())),
                None => Err(RunError::Exit("signal".into())),
            };
        }
        if started.elapsed() >= timeout {
            // Best effort: the child may exit between the poll and the kill.
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::Timeout);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log lines that explain a failure: those with `[E]` or `Error`, else the last lines.
fn relevant_log_lines(log: &str) -> Vec<String> {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[E]") || l.contains("Error") || l.contains("ERROR"))
        .collect();
    let chosen = if errors.is_empty() {
        log.lines().collect::<Vec<_>>()
    } else {
        errors
    };
    chosen[chosen.len().saturating_sub(MAX_QUOTED_LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_banners_and_version_lines() {
        let v = |major, minor, patch| {
            Some(TrtVersion {
                major,
                minor,
                patch,
            })
        };
        assert_eq!(
            TrtVersion::from_log("&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec"),
            v(10, 3, 0)
        );
        assert_eq!(
            TrtVersion::from_log("[TensorRT v8601] # trtexec --verbose"),
            v(8, 6, 1)
        );
        assert_eq!(TrtVersion::from_log("[TensorRT v8502]"), v(8, 5, 2));
        assert_eq!(
            TrtVersion::from_log("x\n[I] TensorRT version: 10.12.0\n"),
            v(10, 12, 0)
        );
        assert_eq!(TrtVersion::from_log("no version here"), None);
    }

    #[test]
    fn shapes_join_and_quote_names() {
        let shapes = BTreeMap::from([
            ("input:0".to_string(), vec![1, 3, 224, 224]),
            ("mask".to_string(), vec![1, 10]),
        ]);
        assert_eq!(shapes_arg(&shapes), "'input:0':1x3x224x224,mask:1x10");
    }

    #[test]
    fn error_lines_are_quoted_else_the_tail() {
        let log = "[I] start\n[E] Error[4]: bad Q\n[I] more\n[E] Engine could not be created\n";
        assert_eq!(
            relevant_log_lines(log),
            ["[E] Error[4]: bad Q", "[E] Engine could not be created"]
        );
        assert_eq!(relevant_log_lines("a\nb"), ["a", "b"]);
    }

    #[test]
    fn typing_policies_that_a_version_lacks_are_refused() {
        let v11 = TrtVersion {
            major: 11,
            minor: 0,
            patch: 0,
        };
        let v86 = TrtVersion {
            major: 8,
            minor: 6,
            patch: 1,
        };
        assert!(check_typing(v11, TypingPolicy::Weak).is_err());
        assert!(check_typing(v11, TypingPolicy::Best).is_err());
        assert!(check_typing(v11, TypingPolicy::StronglyTyped).is_ok());
        assert!(check_typing(v86, TypingPolicy::StronglyTyped).is_err());
        assert!(check_typing(v86, TypingPolicy::Weak).is_ok());
    }
}
