//! The `trtq` command: parses arguments and calls the library. Exit codes: 0 ok, 1 a check or
//! gate failed, 2 bad input or config, 3 missing environment.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use trtq::{Error, ui};

#[derive(Parser)]
#[command(
    name = "trtq",
    version,
    about = "FP32 ONNX → TensorRT INT8 with Q/DQ placed where TensorRT fuses it, verified from the engine's layer report"
)]
struct Cli {
    /// More detail on stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model: versions, inputs/outputs, op histogram, parameters, what normalization changes.
    Inspect {
        /// The ONNX model.
        model: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the pipeline of a config: normalize, fuse, insert Q/DQ, calibrate, build, verify, report.
    Build {
        /// The YAML config.
        config: PathBuf,
        /// Output directory (default: the config's output_dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Calibration device, overriding calibration.device.
        #[arg(long, value_enum)]
        device: Option<DeviceArg>,
        /// Skip the engine stages even when trtexec is available (CPU-only mode).
        #[arg(long)]
        cpu: bool,
        /// Stop after this stage.
        #[arg(long, value_enum)]
        until: Option<UntilArg>,
        /// Skip running the model for calibration: re-derive every amax with the config's
        /// method from this calib.json of an earlier build (exit 2 if it lacks a Q/DQ tensor).
        #[arg(long, value_name = "CALIB_JSON")]
        reuse_calibration: Option<PathBuf>,
    },
    /// Amax of one .npy array by a calibration method (tests/conformance/test_calib_parity.py).
    #[command(hide = true)]
    CalibAmax {
        /// The .npy file.
        file: PathBuf,
        /// max | percentile | entropy | mse.
        #[arg(long)]
        method: String,
        /// Percentile for `percentile`.
        #[arg(long, default_value_t = trtq::calib::DEFAULT_PERCENTILE)]
        percentile: f64,
    },
    /// Print the TensorRT pattern library (ops matched, QDQ points, rationale) from the code.
    Patterns {
        /// Markdown table instead of text.
        #[arg(long)]
        markdown: bool,
    },
    /// Re-encode a model (decode, then encode), e.g. to move weights to or from external data.
    Convert {
        /// The ONNX model to read.
        input: PathBuf,
        /// Where to write it (never the input).
        output: PathBuf,
        /// Where initializers go.
        #[arg(long, value_enum, default_value_t = ExternalArg::Auto)]
        external_data: ExternalArg,
    },
    /// Check an engine's layer report (from any build): broken fusions, unfused Q/DQ, reformat
    /// layers, precision. Exit 1 when a gate fails (default gates of the config's `verify:`).
    Verify {
        /// Layer information: trtexec --exportLayerInfo, built with --profilingVerbosity=detailed.
        #[arg(long)]
        layers: PathBuf,
        /// Per-layer profile: trtexec --exportProfile (reformat time share).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Per-iteration timings: trtexec --exportTimes (latency).
        #[arg(long)]
        times: Option<PathBuf>,
        /// matches.json of the pattern stage (broken-fusion check).
        #[arg(long)]
        matches: Option<PathBuf>,
        /// Print {"findings", "summary"} JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// CI regression gate: compare a run's report.json with a baseline report.json. Exit 1 on a
    /// latency regression beyond the threshold, a new broken fusion, new reformat layers or unfused
    /// Q/DQ, or an SQNR drop.
    Compare {
        /// The baseline report.json (e.g. committed in bench-results/baselines/).
        baseline: PathBuf,
        /// The current run's report.json.
        current: PathBuf,
        /// Largest allowed growth of any variant's median latency ("5%" or "5").
        #[arg(long, default_value = "5%", value_parser = parse_percent)]
        max_latency_regression: f64,
        /// Print the comparison as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Normalize a model, then convert its float regions to FP16 as strongly typed builds use
    /// them (graph I/O keeps its types). Prints what stayed FP32.
    #[command(hide = true)]
    Fp16 {
        /// The ONNX model to read (FP32, or with Q/DQ).
        input: PathBuf,
        /// Where to write the FP16 model (never the input).
        output: PathBuf,
        /// Concrete shape of a graph input with dynamic dims: NAME=D0,D1,... (repeatable).
        #[arg(long = "shape", value_parser = parse_input_shape)]
        shapes: Vec<(String, Vec<i64>)>,
        /// Target opset of normalization (default: 17, or the model's own when newer).
        #[arg(long)]
        opset: Option<i64>,
        /// Keep this op type in FP32 (repeatable).
        #[arg(long = "keep-fp32-op")]
        keep_fp32_ops: Vec<String>,
        /// Keep this node in FP32 (repeatable).
        #[arg(long = "keep-fp32-node")]
        keep_fp32_nodes: Vec<String>,
        /// Run decomposed LayerNorm statistics in FP16 too (they overflow; for comparisons).
        #[arg(long)]
        fp16_layer_norm_stats: bool,
        /// Print the conversion report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Reads "5%" or "5" as 5.0 (a finite, non-negative percentage).
fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(pct) if pct.is_finite() && pct >= 0.0 => Ok(pct),
        _ => Err(format!("'{text}' is not a percentage (e.g. 5%)")),
    }
}

/// Parses `NAME=D0,D1,...`.
fn parse_input_shape(arg: &str) -> Result<(String, Vec<i64>), String> {
    let (name, dims) = arg
        .rsplit_once('=')
        .ok_or_else(|| format!("'{arg}': expected NAME=D0,D1,..."))?;
    let dims = dims
        .split(',')
        .map(|d| {
            d.trim()
                .parse::<i64>()
                .map_err(|e| format!("'{arg}': dim '{d}': {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), dims))
}

#[derive(Clone, Copy, ValueEnum)]
enum UntilArg {
    /// Load, normalize, write model.normalized.onnx and summary.json.
    Normalize,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    /// The GPU when present, else the CPU.
    Auto,
    /// The CPU executor.
    Cpu,
    /// The CUDA executor (exit 3 when unavailable).
    Cuda,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExternalArg {
    /// Inside the model file unless it would exceed protobuf's 2 GiB limit.
    Auto,
    /// Large initializers in `<model>.data`.
    Always,
    /// Everything inside the model file.
    Never,
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Inspect { model, json } => {
            let m = trtq::load(&model)?;
            let report = trtq::inspect::inspect(&m, &trtq::fold_evaluator);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::BadInput(e.to_string()))?
                );
            } else {
                print!("{}", report.to_text());
            }
            Ok(())
        }
        Command::Build {
            config,
            out,
            device,
            cpu,
            until,
            reuse_calibration,
        } => {
            let device = device.map(|d| match d {
                DeviceArg::Auto => trtq::config::Device::Auto,
                DeviceArg::Cpu => trtq::config::Device::Cpu,
                DeviceArg::Cuda => trtq::config::Device::Cuda,
            });
            let until = until.map(|u| match u {
                UntilArg::Normalize => trtq::pipeline::StopAfter::Normalize,
            });
            let opts = trtq::pipeline::BuildOptions {
                out_dir: out,
                device,
                cpu_only: cpu,
                until,
                reuse_calibration,
            };
            let summary = trtq::pipeline::build(&config, &opts)?;
            ui::info(format!(
                "wrote {} artifacts to {} ({})",
                summary.artifacts.len(),
                summary.output_dir.display(),
                summary.engines
            ));
            if summary.gate_failures.is_empty() {
                Ok(())
            } else {
                Err(Error::CheckFailed(format!(
                    "gates failed: {}",
                    summary.gate_failures.join("; ")
                )))
            }
        }
        Command::CalibAmax {
            file,
            method,
            percentile,
        } => {
            let method = trtq::calib::Method::from_name(&method, percentile)
                .map_err(|e| Error::BadInput(e.to_string()))?;
            let result = trtq::calib::amax_of_npy(&file, method)
                .map_err(|e| Error::BadInput(e.to_string()))?;
            println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| Error::BadInput(e.to_string()))?
            );
            Ok(())
        }
        Command::Patterns { markdown } => {
            if markdown {
                print!("{}", trtq::patterns::tensorrt::library_markdown());
            } else {
                print!("{}", trtq::patterns::tensorrt::library_text());
            }
            Ok(())
        }
        Command::Convert {
            input,
            output,
            external_data,
        } => {
            let external = match external_data {
                ExternalArg::Auto => trtq::onnx::ExternalData::Auto,
                ExternalArg::Always => trtq::onnx::ExternalData::Always,
                ExternalArg::Never => trtq::onnx::ExternalData::Never,
            };
            let opts = trtq::onnx::SaveOptions {
                external,
                ..Default::default()
            };
            trtq::convert(&input, &output, &opts)
        }
        Command::Fp16 {
            input,
            output,
            shapes,
            opset,
            keep_fp32_ops,
            keep_fp32_nodes,
            fp16_layer_norm_stats,
            json,
        } => {
            let as_graph_error = |e| Error::graph(&input, e);
            let (proto, files) = trtq::onnx::load_model_with_files(&input)?;
            let mut model = trtq::graph::Model::from_proto(proto).map_err(as_graph_error)?;
            let normalize = trtq::graph::normalize::NormalizeOptions {
                opset: opset.unwrap_or(model.opset().max(17)),
                input_shapes: shapes.into_iter().collect(),
            };
            trtq::graph::normalize::normalize(&mut model, &normalize, &trtq::fold_evaluator)
                .map_err(as_graph_error)?;
            let opts = trtq::quantize::fp16::Fp16Options {
                keep_fp32_ops,
                keep_fp32_nodes,
                layer_norm_stats_fp32: !fp16_layer_norm_stats,
            };
            let (converted, report) = trtq::quantize::fp16::convert_float_to_fp16(&model, &opts)
                .map_err(as_graph_error)?;
            let proto = converted.to_proto().map_err(as_graph_error)?;
            let save = trtq::onnx::SaveOptions {
                inputs: files.all(),
                ..Default::default()
            };
            trtq::onnx::save_model(&proto, &output, &save)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| Error::BadInput(e.to_string()))?
                );
            }
            ui::info(format!(
                "fp16: {} nodes FP16, {} kept FP32, {} casts, {} initializers converted → {}",
                report.fp16_nodes,
                report.fp32_nodes.len(),
                report.casts,
                report.converted_initializers + report.copied_initializers,
                output.display()
            ));
            Ok(())
        }
        Command::Verify {
            layers,
            profile,
            times,
            matches,
            json,
        } => {
            let bad_input = |e: &dyn std::fmt::Display| Error::BadInput(e.to_string());
            let report = trtq::trt::report::EngineReport::load(
                &layers,
                profile.as_deref(),
                times.as_deref(),
            )
            .map_err(|e| bad_input(&e))?;
            let matches = matches
                .map(|path| trtq::verify::MatchesFile::load(&path))
                .transpose()
                .map_err(|e| bad_input(&e))?;
            let gates = trtq::verify::VerifyGates::default();
            let outcome = trtq::verify::verify(&report, matches.as_ref(), &gates);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcome.to_json()).map_err(|e| bad_input(&e))?
                );
            } else {
                print!("{}", outcome.to_text());
            }
            if outcome.passed() {
                Ok(())
            } else {
                Err(Error::CheckFailed(format!(
                    "verification failed: {}",
                    outcome.gate_failures.join("; ")
                )))
            }
        }
        Command::Compare {
            baseline,
            current,
            max_latency_regression,
            json,
        } => {
            let bad_input = |e: &dyn std::fmt::Display| Error::BadInput(e.to_string());
            let baseline = trtq::report::RunReport::load(&baseline).map_err(|e| bad_input(&e))?;
            let current = trtq::report::RunReport::load(&current).map_err(|e| bad_input(&e))?;
            let outcome = trtq::report::compare(&baseline, &current, max_latency_regression);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&outcome).map_err(|e| bad_input(&e))?
                );
            } else {
                print!("{}", outcome.to_text());
            }
            if outcome.passed() {
                Ok(())
            } else {
                Err(Error::CheckFailed(format!(
                    "{} regressions against the baseline",
                    outcome.failures().count()
                )))
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ui::set_verbosity(if cli.quiet {
        -1
    } else {
        cli.verbose.min(3) as i8
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
