//! The TensorRT driver against `tests/replay-trtexec`, a stand-in for trtexec that checks the
//! arguments it gets and replays real recorded reports. These tests exercise trtq's driver
//! (command line, timeout, log capture, errors, file handling), not TensorRT.
#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use trtq::trt::driver::{BuildSettings, DriverError, Trtexec, TypingPolicy};
use trtq::trt::report::ReportError;
use trtq::verify::{VerifyGates, verify};

/// A trtexec in `dir` that runs the stand-in with `env` set.
fn stand_in(dir: &Path, recordings: &Path, env: &[(&str, &str)]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let replay = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/replay-trtexec");
    let mut body = format!(
        "#!/bin/sh\nexport REPLAY_REPORTS='{}'\n",
        recordings.display()
    );
    for (key, value) in env {
        body.push_str(&format!("export {key}='{value}'\n"));
    }
    body.push_str(&format!("exec '{}' \"$@\"\n", replay.display()));
    let path = dir.join("trtexec");
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Bench {
    dir: tempfile::TempDir,
    onnx: PathBuf,
    args_file: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.qdq.onnx");
        std::fs::write(&onnx, b"stand-in input: replay-trtexec does not read it").unwrap();
        let args_file = dir.path().join("args.txt");
        Bench {
            dir,
            onnx,
            args_file,
        }
    }

    fn trtexec(&self, recordings: &Path, env: &[(&str, &str)]) -> Trtexec {
        let args = self.args_file.display().to_string();
        let mut env = env.to_vec();
        env.push(("REPLAY_ARGS_FILE", &args));
        let path = stand_in(self.dir.path(), recordings, &env);
        Trtexec::open(path.to_str().unwrap()).expect("stand-in opens")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn received_args(&self) -> Vec<String> {
        std::fs::read_to_string(&self.args_file)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

#[test]
fn driver_with_stand_in_builds_strongly_typed_with_the_verification_flags_and_loads_the_replay() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[]);
    assert_eq!(trtexec.version().to_string(), "10.3.0");
    let build = trtexec
        .build(
            &bench.onnx,
            &bench.out(),
            "pattern",
            &BuildSettings::default(),
        )
        .unwrap();

    let args = bench.received_args();
    for flag in [
        "--profilingVerbosity=detailed",
        "--separateProfileRun",
        "--noDataTransfers",
        "--useCudaGraph",
        "--useSpinWait",
        "--stronglyTyped",
        "--memPoolSize=workspace:4096M",
    ] {
        assert!(
            args.iter().any(|a| a == flag),
            "{flag} missing from {args:?}"
        );
    }
    assert!(
        !args
            .iter()
            .any(|a| a == "--int8" || a == "--fp16" || a == "--best"),
        "{args:?}"
    );
    assert!(args.contains(&format!("--onnx={}", bench.onnx.display())));
    // trtexec wrote under temporary names; the driver renamed them into place.
    assert!(
        args.iter()
            .any(|a| a.starts_with("--exportLayerInfo=") && a.ends_with(".partial")),
        "{args:?}"
    );
    assert!(
        build
            .args
            .iter()
            .any(|a| *a == format!("--exportLayerInfo={}", build.files.layer_info.display()))
    );
    for file in [
        &build.files.engine,
        &build.files.layer_info,
        &build.files.profile,
        &build.files.times,
        &build.files.log,
    ] {
        assert!(file.is_file(), "{} missing", file.display());
    }
    let leftovers: Vec<_> = std::fs::read_dir(bench.out())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        std::fs::read_to_string(&build.files.log)
            .unwrap()
            .contains("&&&& PASSED")
    );

    // The replayed qgap engine, profile and timings come back as one report.
    assert_eq!(build.report.layers().len(), 24);
    assert!(build.report.layers().iter().all(|l| l.time_ms.is_some()));
    assert_eq!(build.report.latency().unwrap().iterations, 1456);
    assert!(verify(&build.report, None, &VerifyGates::default()).passed());
}

#[test]
fn driver_with_stand_in_passes_weak_and_best_typing_flags() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[]);
    for (typing, expected, absent) in [
        (
            TypingPolicy::Weak,
            &["--int8", "--fp16"][..],
            &["--best", "--stronglyTyped"][..],
        ),
        (
            TypingPolicy::Best,
            &["--best"][..],
            &["--int8", "--fp16", "--stronglyTyped"][..],
        ),
    ] {
        let settings = BuildSettings {
            typing,
            ..BuildSettings::default()
        };
        trtexec
            .build(&bench.onnx, &bench.out(), "weak", &settings)
            .unwrap();
        let args = bench.received_args();
        for flag in expected {
            assert!(
                args.iter().any(|a| a == flag),
                "{typing:?}: {flag} missing from {args:?}"
            );
        }
        for flag in absent {
            assert!(
                !args.iter().any(|a| a == flag),
                "{typing:?}: {flag} present in {args:?}"
            );
        }
    }
}

#[test]
fn driver_with_stand_in_passes_shapes_workspace_level_cache_and_extra_args() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[]);
    let cache = bench.dir.path().join("timing.cache");
    let settings = BuildSettings {
        shapes: [
            ("input.1".to_string(), vec![32, 3, 224, 224]),
            ("ids:0".to_string(), vec![1, 128]),
        ]
        .into(),
        workspace_mib: Some(2048),
        builder_optimization_level: Some(5),
        timing_cache: Some(cache.clone()),
        extra_args: vec!["--avgTiming=8".to_string()],
        ..BuildSettings::default()
    };
    trtexec
        .build(&bench.onnx, &bench.out(), "fp16", &settings)
        .unwrap();
    let args = bench.received_args();
    for flag in [
        "--shapes='ids:0':1x128,input.1:32x3x224x224".to_string(),
        "--memPoolSize=workspace:2048M".to_string(),
        "--builderOptimizationLevel=5".to_string(),
        format!("--timingCacheFile={}", cache.display()),
    ] {
        assert!(args.contains(&flag), "{flag} missing from {args:?}");
    }
    assert_eq!(
        args.last().map(String::as_str),
        Some("--avgTiming=8"),
        "extra args come last"
    );
}

#[test]
fn driver_stops_a_stand_in_that_never_finishes_at_the_timeout() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[("REPLAY_MODE", "sleep")]);
    let settings = BuildSettings {
        timeout: Duration::from_millis(500),
        ..BuildSettings::default()
    };
    let started = Instant::now();
    let err = trtexec
        .build(&bench.onnx, &bench.out(), "slow", &settings)
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, DriverError::Timeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("slow") && err.to_string().contains("500ms"),
        "{err}"
    );
    assert!(!bench.out().join("slow.engine").exists());
    assert!(
        bench.out().join("slow.trtexec.log").is_file(),
        "the log so far is kept"
    );
}

#[test]
fn driver_quotes_the_error_lines_of_a_failing_stand_in() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[("REPLAY_MODE", "fail")]);
    let err = trtexec
        .build(
            &bench.onnx,
            &bench.out(),
            "uniform",
            &BuildSettings::default(),
        )
        .unwrap_err();
    let DriverError::BuildFailed {
        status,
        relevant,
        log,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(status, "1");
    assert_eq!(relevant.len(), 2, "{relevant:?}");
    assert!(relevant[0].contains("QuantizeLinear_7: only activation types allowed"));
    assert!(relevant[1].contains("Engine could not be created"));
    let message = err.to_string();
    assert!(
        message.contains("Error Code 4") && !message.contains("this line is context"),
        "{message}"
    );
    assert!(log.is_file());
    assert_eq!(err.exit_code(), 1);
    assert!(!bench.out().join("uniform.layers.json").exists());
}

#[test]
fn missing_trtexec_is_a_missing_environment_error_with_exit_code_3() {
    for configured in [
        "/nonexistent/TensorRT/bin/trtexec",
        "trtq-test-no-such-trtexec",
    ] {
        let err = Trtexec::open(configured).unwrap_err();
        assert!(err.is_missing_environment(), "{err:?}");
        assert_eq!(err.exit_code(), 3);
        let message = err.to_string();
        assert!(
            message.contains(configured) && message.contains("tensorrt.trtexec"),
            "{message}"
        );
    }
}

#[test]
fn driver_with_stand_in_replaying_a_names_only_report_gives_the_detailed_verbosity_error() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[("REPLAY_MODE", "names-only")]);
    let err = trtexec
        .build(
            &bench.onnx,
            &bench.out(),
            "pattern",
            &BuildSettings::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Report(ReportError::NamesOnly { layers: 86, .. })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("rebuild with detailed verbosity"),
        "{err}"
    );
}

#[test]
fn driver_with_a_tensorrt_11_stand_in_refuses_weak_typing_before_running() {
    let Some(recordings) = support::recordings_dir() else {
        return;
    };
    let bench = Bench::new();
    let trtexec = bench.trtexec(&recordings, &[("REPLAY_TRT_VERSION", "110000")]);
    assert_eq!(trtexec.version().major, 11);
    let settings = BuildSettings {
        typing: TypingPolicy::Weak,
        ..BuildSettings::default()
    };
    let err = trtexec
        .build(&bench.onnx, &bench.out(), "weak", &settings)
        .unwrap_err();
    assert!(
        matches!(err, DriverError::TypingUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("strongly-typed"), "{err}");
    assert_eq!(err.exit_code(), 2);
    assert!(
        !bench.args_file.exists(),
        "the stand-in was never asked to build"
    );
}
