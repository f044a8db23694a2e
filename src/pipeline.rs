//! `trtq build`: the whole pipeline, stage by stage, each writing its artifact.
//!
//! Owns: the order of the stages, what each writes into the run's output directory, and the
//! run summary (`summary.json`). Every input is checked (config, model, normalization, pattern
//! transform, Q/DQ insertion, calibration data) before the output directory is touched, so bad
//! input writes nothing. Does not own: any stage's logic (each is a library call).

use crate::calib::data::{self as calib_data, ModelInput};
use crate::calib::{CalibrationResult, Method};
use crate::config::{BatchSize, Config, Device, Strategy, Typing};
use crate::evaluate::{CandidateAccuracy, evaluate};
use crate::exec::{Backend, CpuBackend};
use crate::graph::Model;
use crate::graph::normalize::{NormalizeOptions, NormalizeReport, normalize};
use crate::patterns::{MatchesFile, PatternMatch, tensorrt, transform};
use crate::quantize::fp16::{Fp16Options, Fp16Report, convert_float_to_fp16};
use crate::quantize::{
    QuantConfig, insert_qdq, set_activation_scales, tie_groups, uniform::insert_qdq_uniform,
};
use crate::rebatch::{check_same_model, normalize_at_batch};
use crate::report::{BuiltEngine, NO_TENSORRT, RunReport, Variant, VariantReport, qdq_node_count};
use crate::trt::driver::{BuildSettings, Trtexec, TypingPolicy};
use crate::verify::{VerifyGates, verify};
use crate::{Error, artifacts::OutputDir, ui};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Overrides of the config given on the command line.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Output directory instead of the config's `output_dir`.
    pub out_dir: Option<PathBuf>,
    /// Calibration device instead of the config's.
    pub device: Option<Device>,
    /// Skip the engine stages even when trtexec is available.
    pub cpu_only: bool,
    /// Stop after this stage (e.g. to inspect the normalized model).
    pub until: Option<StopAfter>,
    /// Take the activation statistics from this calib.json instead of running the model
    /// (amaxes re-derived with the config's method).
    pub reuse_calibration: Option<PathBuf>,
}

/// A stage `trtq build --until` may stop after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAfter {
    /// After writing model.normalized.onnx.
    Normalize,
}

/// What a run did, as written to `summary.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// trtq's version.
    pub trtq_version: &'static str,
    /// The config file.
    pub config_file: PathBuf,
    /// The effective config (defaults filled, paths resolved).
    pub config: Config,
    /// The output directory.
    pub output_dir: PathBuf,
    /// Normalization's report.
    pub normalize: NormalizeReport,
    /// Matches per pattern.
    pub matches: BTreeMap<String, usize>,
    /// Nodes no pattern covers, per op type.
    pub unmatched: BTreeMap<String, usize>,
    /// Q/DQ node count per strategy.
    pub qdq_nodes: BTreeMap<String, usize>,
    /// Calibration: method, samples, passes, seconds, tensors calibrated.
    pub calibration: Option<CalibrationSummary>,
    /// Accuracy against FP32 per Q/DQ model (`pattern_int8`, `uniform_int8`) and, with
    /// `compare.fp16`, per FP16-float-policy model (`fp16`, `pattern_int8_fp16`, `uniform_int8_fp16`).
    pub accuracy: BTreeMap<String, CandidateAccuracy>,
    /// Whether engines were built, and if not why.
    pub engines: String,
    /// Gates that failed (the run exits 1 when this is not empty).
    pub gate_failures: Vec<String>,
    /// Artifacts written, relative to the output directory.
    pub artifacts: Vec<String>,
    /// Warnings the user should read.
    pub warnings: Vec<String>,
}

/// The calibration part of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct CalibrationSummary {
    /// Method.
    pub method: String,
    /// Where the data came from.
    pub data: String,
    /// Samples per pass.
    pub samples: usize,
    /// Passes over the data.
    pub passes: usize,
    /// Samples per executor run, in calibration and evaluation.
    pub batch_size: usize,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Tensors calibrated.
    pub tensors: usize,
    /// Device used.
    pub device: String,
}

/// The Q/DQ models of a run, before calibration.
struct Quantized {
    fused: Model,
    matches: Vec<PatternMatch>,
    unmatched: Vec<String>,
    pattern: Model,
    uniform: Option<Model>,
}

fn quantize_stage(model: &Model, config: &Config) -> Result<Quantized, Error> {
    let path = &config.model;
    let qcfg = QuantConfig::from(&config.quantization);
    if config.target == crate::config::Target::Tensorrt {
        qcfg.validate_for_tensorrt()
            .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?;
    }
    let result = transform(model, &tensorrt::library())
        .map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))?;
    let q = |r: Result<Model, crate::quantize::QuantizeError>| {
        r.map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))
    };
    let pattern = q(insert_qdq(&result.model, &result.matches, &qcfg))?;
    let uniform = (config.compare.uniform || config.quantization.strategy == Strategy::Uniform)
        .then(|| q(insert_qdq_uniform(&result.model, &qcfg)))
        .transpose()?;
    Ok(Quantized {
        fused: result.model,
        matches: result.matches,
        unmatched: result.unmatched,
        pattern,
        uniform,
    })
}

/// The Q/DQ models of `declared` rebuilt at `batch` samples per run from the model file, checked
/// to be the declared ones with another batch (see [`crate::rebatch`]).
fn batched_stage(
    config: &Config,
    norm_opts: &NormalizeOptions,
    inputs: &[ModelInput],
    declared: &Quantized,
    batch: usize,
) -> Result<Quantized, String> {
    let declared_batch = declared_batch(inputs).unwrap_or(1);
    let original = crate::load(&config.model).map_err(|e| e.to_string())?;
    let normalized =
        normalize_at_batch(original, norm_opts, inputs, batch).map_err(|e| e.to_string())?;
    let batched = quantize_stage(&normalized, config).map_err(|e| e.to_string())?;
    let pairs = [
        (Some(&declared.fused), Some(&batched.fused)),
        (Some(&declared.pattern), Some(&batched.pattern)),
        (declared.uniform.as_ref(), batched.uniform.as_ref()),
    ];
    for (want, got) in pairs {
        if let (Some(want), Some(got)) = (want, got) {
            check_same_model(want, got, declared_batch, batch).map_err(|e| e.to_string())?;
        }
    }
    Ok(batched)
}

/// The batch dimension the inputs fix (`None` when it is dynamic).
fn declared_batch(inputs: &[ModelInput]) -> Option<usize> {
    inputs
        .first()
        .and_then(|i| i.dims.first())
        .and_then(|&d| usize::try_from(d).ok())
}

/// The evaluation data and its sample limit (the calibration data without an `evaluation:`).
fn eval_split(config: &Config) -> (&crate::config::DataSource, usize) {
    match &config.evaluation {
        Some(e) => (&e.data, e.max_samples),
        None => (&config.calibration.data, config.calibration.max_samples),
    }
}

/// What calibration and evaluation run: the models rebuilt at the batch size (`None`: the
/// declared ones), their inputs, and the samples per executor run.
struct RunBatch {
    batched: Option<Quantized>,
    inputs: Vec<ModelInput>,
    batch: usize,
}

/// Chooses the batch calibration and evaluation run at: `calibration.batch_size`, no more than
/// either split holds; a model with a fixed batch is rebuilt at it (or, when it cannot be, runs
/// at the declared batch with a warning). Checks both splits against the model and warns about
/// the samples a fixed batch leaves out.
fn run_batch(
    config: &Config,
    norm_opts: &NormalizeOptions,
    inputs: &[ModelInput],
    declared: &Quantized,
    device: &CalibrationDevice,
    warnings: &mut Vec<String>,
) -> Result<RunBatch, Error> {
    let mut warn = |w: String| {
        ui::warn(&w);
        warnings.push(w);
    };
    let requested = match config.calibration.batch_size {
        crate::config::BatchSize::Fixed(n) => n,
        crate::config::BatchSize::Auto => {
            device.auto_batch(&declared.fused, declared_batch(inputs).unwrap_or(1))
        }
    };
    let calib = (&config.calibration.data, config.calibration.max_samples);
    let splits = [("calibration", calib), ("evaluation", eval_split(config))];
    let data_err = |e: calib_data::DataError| Error::BadInput(e.to_string());
    let mut counts = [0; 2];
    for (count, (_, (source, max))) in counts.iter_mut().zip(&splits) {
        *count = calib_data::available_samples(source, inputs, *max, 0).map_err(data_err)?;
    }
    let wanted = counts.iter().fold(requested, |b, &n| b.min(n)).max(1);
    let batched = match declared_batch(inputs) {
        Some(fixed) if fixed != wanted => {
            match batched_stage(config, norm_opts, inputs, declared, wanted) {
                Ok(batched) => Some(batched),
                Err(why) => {
                    warn(format!(
                        "calibration and evaluation run batches of {fixed} (the declared batch), \
                         not {wanted}: {why}"
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    let inputs = match &batched {
        Some(b) => model_inputs(&b.fused)?,
        None => inputs.to_vec(),
    };
    let batch = declared_batch(&inputs).unwrap_or(wanted);
    for ((split, (source, max)), count) in splits.iter().zip(counts) {
        let opened = calib_data::open(source, &inputs, batch, *max, 0).map_err(data_err)?;
        let used = opened.total().unwrap_or(count);
        if used < count {
            warn(format!(
                "{split}: {} of {count} samples left out: the model runs batches of exactly \
                 {batch}; give a multiple of {batch} samples (max_samples) to use them all",
                count - used
            ));
        }
    }
    Ok(RunBatch {
        batched,
        inputs,
        batch,
    })
}

fn model_inputs(model: &Model) -> Result<Vec<ModelInput>, Error> {
    let g = &model.graph;
    g.inputs
        .iter()
        .filter(|i| i.name.as_deref().is_some_and(|n| g.is_input(n)))
        .map(|i| ModelInput::from_value_info(i).map_err(|e| Error::BadInput(e.to_string())))
        .collect()
}

/// Where calibration runs, as chosen from the config and `--device`.
#[derive(Clone, Debug)]
enum CalibrationDevice {
    /// The CPU executor.
    Cpu,
    /// The CUDA executor on this GPU; `required` (device: cuda) makes a backend that cannot
    /// start an exit-3 error, else (auto) the CPU takes over with a warning.
    #[cfg(feature = "cuda")]
    Cuda {
        /// The GPU.
        info: crate::exec::cuda::DeviceInfo,
        /// True for `device: cuda`.
        required: bool,
    },
}

impl CalibrationDevice {
    /// How the summary names the device.
    fn describe(&self) -> String {
        match self {
            CalibrationDevice::Cpu => "cpu".into(),
            #[cfg(feature = "cuda")]
            CalibrationDevice::Cuda { info, .. } => info.to_string(),
        }
    }

    /// The batch size `calibration.batch_size: auto` means here: on the GPU the largest that
    /// fits free device memory by the plan's peak live bytes per sample (see
    /// [`crate::exec::cuda::auto_batch`]; [`BatchSize::GPU_UNPLANNED`] when it cannot be planned),
    /// on the CPU the declared batch.
    #[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
    fn auto_batch(&self, model: &Model, declared_batch: usize) -> usize {
        match self {
            CalibrationDevice::Cpu => declared_batch,
            #[cfg(feature = "cuda")]
            CalibrationDevice::Cuda { info, .. } => {
                match crate::exec::cuda::planned_peak_bytes(model) {
                    Ok(Some(peak)) => {
                        let batch = crate::exec::cuda::auto_batch(
                            peak / declared_batch.max(1),
                            info.free_memory,
                        );
                        ui::info(format!(
                            "batch_size auto: {batch} ({:.1} MiB of live values per sample, {:.1} GiB free on the GPU)",
                            peak as f64 / declared_batch.max(1) as f64 / f64::from(1u32 << 20),
                            info.free_memory as f64 / f64::from(1u32 << 30)
                        ));
                        batch
                    }
                    _ => BatchSize::GPU_UNPLANNED,
                }
            }
        }
    }

    /// The calibration backend with `model` prepared. The returned description names the device
    /// that will actually run (the CPU when `auto`'s GPU backend could not start).
    fn backend(&self, model: &Model, path: &Path) -> Result<(Box<dyn Backend>, String), Error> {
        let bad_model =
            |e: crate::exec::ExecError| Error::BadInput(format!("{}: {e}", path.display()));
        #[cfg(feature = "cuda")]
        if let CalibrationDevice::Cuda { info, required } = self {
            use crate::exec::cuda::CudaBackend;
            match CudaBackend::new(info.clone(), false) {
                Ok(mut gpu) => {
                    gpu.prepare(model).map_err(bad_model)?;
                    return Ok((Box::new(gpu), self.describe()));
                }
                Err(e) if *required => {
                    return Err(Error::MissingEnvironment(format!(
                        "calibration.device is cuda, but the CUDA backend could not start on {info}: {e}"
                    )));
                }
                Err(e) => ui::warn(format!(
                    "the CUDA backend could not start on {info} ({e}); calibrating on the CPU"
                )),
            }
        }
        let cpu = CpuBackend::with_model(model).map_err(bad_model)?;
        Ok((Box::new(cpu), CalibrationDevice::Cpu.describe()))
    }
}

/// Picks the calibration device: `auto` takes the GPU when one is usable and says which (or why
/// not), `cuda` without a usable GPU is [`Error::MissingEnvironment`] (exit 3) naming what is
/// missing.
fn calibration_device(config: &Config, opts: &BuildOptions) -> Result<CalibrationDevice, Error> {
    let requested = opts.device.unwrap_or(config.calibration.device);
    #[cfg(feature = "cuda")]
    {
        use crate::exec::cuda::probe;
        match requested {
            Device::Cpu => Ok(CalibrationDevice::Cpu),
            Device::Auto => match probe() {
                Ok(info) => {
                    ui::info(format!(
                        "calibration device: {info} (device: auto found a GPU)"
                    ));
                    Ok(CalibrationDevice::Cuda {
                        info,
                        required: false,
                    })
                }
                Err(why) => {
                    ui::info(format!(
                        "calibration device: cpu (device: auto found no usable GPU: {why})"
                    ));
                    Ok(CalibrationDevice::Cpu)
                }
            },
            Device::Cuda => match probe() {
                Ok(info) => {
                    ui::info(format!("calibration device: {info}"));
                    Ok(CalibrationDevice::Cuda {
                        info,
                        required: true,
                    })
                }
                Err(why) => Err(Error::MissingEnvironment(format!(
                    "calibration.device is cuda, but no GPU can be used: {why} (or use device: cpu / auto)"
                ))),
            },
        }
    }
    #[cfg(not(feature = "cuda"))]
    match requested {
        Device::Cpu => Ok(CalibrationDevice::Cpu),
        Device::Auto => {
            ui::info("calibration device: cpu (this build of trtq has no CUDA backend; device: auto falls back to the CPU)");
            Ok(CalibrationDevice::Cpu)
        }
        Device::Cuda => Err(Error::MissingEnvironment(
            "calibration.device is cuda, but this trtq was built without the `cuda` feature (no CUDA backend): rebuild with --features cuda, or use device: cpu / auto".into(),
        )),
    }
}

/// Runs `trtq build` for the config at `config_path`.
pub fn build(config_path: &Path, opts: &BuildOptions) -> Result<Summary, Error> {
    let config = Config::load(config_path)?;
    let out = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| config.output_dir.clone());
    ui::info(format!(
        "trtq build {} → {}",
        config_path.display(),
        out.display()
    ));
    let mut warnings = Vec::new();

    // Every check on the inputs comes before the first write.
    let mut model = crate::load(&config.model)?;
    let norm_opts = NormalizeOptions {
        opset: i64::from(config.opset),
        input_shapes: config
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|&d| d as i64).collect()))
            .collect(),
    };
    let normalize_report = normalize_model(
        &mut model,
        &config.model,
        norm_opts.opset,
        norm_opts.input_shapes.clone(),
    )?;
    ui::info(format!(
        "normalize: opset {} → {}, {} → {} nodes",
        normalize_report.from_opset,
        normalize_report.to_opset,
        normalize_report.nodes_before,
        normalize_report.nodes_after
    ));
    if opts.until == Some(StopAfter::Normalize) {
        let mut run = OutputDir::create(&out, &config.model)?;
        run.save_model(&model, "model.normalized.onnx")?;
        let mut summary = Summary {
            trtq_version: env!("CARGO_PKG_VERSION"),
            config_file: config_path.to_path_buf(),
            output_dir: out,
            normalize: normalize_report,
            matches: BTreeMap::new(),
            unmatched: BTreeMap::new(),
            qdq_nodes: BTreeMap::new(),
            calibration: None,
            accuracy: BTreeMap::new(),
            engines: "not run: --until normalize".into(),
            gate_failures: Vec::new(),
            artifacts: Vec::new(),
            warnings,
            config,
        };
        summary.artifacts = run.written().to_vec();
        summary.artifacts.push("summary.json".into());
        run.write_json("summary.json", &summary)?;
        return Ok(summary);
    }
    let q = quantize_stage(&model, &config)?;
    ui::info(format!(
        "transform: {} matches, {} nodes unmatched",
        q.matches.len(),
        q.unmatched.len()
    ));
    let device = calibration_device(&config, opts)?;
    let inputs = model_inputs(&q.fused)?;
    let RunBatch {
        batched,
        inputs: run_inputs,
        batch: run_batch,
    } = run_batch(&config, &norm_opts, &inputs, &q, &device, &mut warnings)?;
    let calib_source = &config.calibration.data;
    let (eval_source, eval_max) = eval_split(&config);
    let data_err = |e: calib_data::DataError| Error::BadInput(e.to_string());
    let open_calib = || {
        calib_data::open(
            calib_source,
            &run_inputs,
            run_batch,
            config.calibration.max_samples,
            0,
        )
    };
    let open_eval = || calib_data::open(eval_source, &run_inputs, run_batch, eval_max, 0);
    if config.calibration_is_synthetic() {
        let w = "calibration data is synthetic (uniform random in [0, 1)): the scales are only good for latency work, not for accuracy".to_string();
        ui::warn(&w);
        warnings.push(w);
    }

    // Calibration on the fused FP32 model, observing every tensor that gets a Q/DQ; with
    // --reuse-calibration, from a stored calib.json instead (checked before anything is written).
    let method = calib_method(&config)?;
    let mut q_models: Vec<&Model> = vec![&q.pattern];
    q_models.extend(q.uniform.as_ref());
    let tensors = crate::quantize::quantized_activations(&q_models);
    let groups = if config.quantization.tie_groups {
        tie_groups(&q.pattern)
    } else {
        Vec::new()
    };
    let reused = opts
        .reuse_calibration
        .as_deref()
        .map(|stored| CalibrationResult::reuse(stored, &tensors, &groups, method))
        .transpose()
        .map_err(|e| Error::BadInput(format!("--reuse-calibration: {e}")))?;
    // The calibration backend starts before anything is written (a GPU that cannot start under
    // device: cuda is exit 3 with nothing written).
    let run_fused = batched.as_ref().map_or(&q.fused, |b| &b.fused);
    let calibrator = match &reused {
        Some(_) => None,
        None => Some(device.backend(run_fused, &config.model)?),
    };

    let mut run = OutputDir::create(&out, &config.model)?;
    run.save_model(&model, "model.normalized.onnx")?;
    run.save_model(&q.fused, "model.fused.onnx")?;

    let (calib, calibrated_on): (CalibrationResult, String) = match (reused, calibrator) {
        (Some(calib), _) => (calib, "none (--reuse-calibration)".into()),
        (None, None) => {
            return Err(Error::BadInput(
                "internal: no calibration backend was started".into(),
            ));
        }
        (None, Some((mut backend, calibrated_on))) => {
            let bar =
                crate::progress::Progress::new(config.calibration.max_samples as u64, "calibrate");
            let mut calib_data = open_calib().map_err(|e| Error::BadInput(e.to_string()))?;
            let calib = crate::calib::calibrate(
                backend.as_mut(),
                calib_data.as_mut(),
                &tensors,
                &groups,
                method,
                &|n| bar.set(1, n as u64),
            )
            .map_err(|e| Error::BadInput(format!("calibration: {e}")))?;
            bar.finish();
            (calib, calibrated_on)
        }
    };
    for (t, s) in &calib.tensors {
        for w in &s.warnings {
            let w = format!("tensor '{t}': {w}");
            ui::warn(&w);
            warnings.push(w);
        }
    }
    ui::info(format!(
        "calibrate: {} tensors, {} samples × {} pass(es), {:.1} s ({})",
        tensors.len(),
        calib.samples,
        calib.passes,
        calib.seconds,
        method.name()
    ));
    let amax = calib.amax_map();
    let mut pattern = q.pattern;
    set_activation_scales(&mut pattern, &amax).map_err(|e| Error::BadInput(e.to_string()))?;
    let mut uniform = q.uniform;
    if let Some(u) = uniform.as_mut() {
        set_activation_scales(u, &amax).map_err(|e| Error::BadInput(e.to_string()))?;
    }
    let mut batched = batched;
    if let Some(b) = batched.as_mut() {
        for m in std::iter::once(&mut b.pattern).chain(b.uniform.as_mut()) {
            set_activation_scales(m, &amax).map_err(|e| Error::BadInput(e.to_string()))?;
        }
    }
    let matches_file = MatchesFile {
        matches: q.matches.clone(),
        unmatched: q.unmatched.clone(),
        tie_groups: groups.clone(),
    };
    run.write_json("matches.json", &matches_file)?;
    run.save_model(&pattern, "model.qdq.onnx")?;
    if let Some(u) = &uniform {
        run.save_model(u, "model.uniform.qdq.onnx")?;
    }
    let calib_text = calib
        .to_json()
        .map_err(|e| Error::BadInput(format!("calib.json: {e}")))?;
    run.write_text("calib.json", &(calib_text + "\n"))?;

    // Accuracy on the evaluation split (or the calibration data), at the calibration batch.
    let mut eval_data = open_eval().map_err(data_err)?;
    let mut int8_models: Vec<(Variant, &Model)> = vec![(Variant::PatternInt8, &pattern)];
    if let Some(u) = &uniform {
        int8_models.push((Variant::UniformInt8, u));
    }
    // The models evaluated run at the calibration batch (the declared ones when not re-batched).
    let (eval_reference, eval_int8): (&Model, Vec<(Variant, &Model)>) = match &batched {
        Some(b) => {
            let mut run = vec![(Variant::PatternInt8, &b.pattern)];
            run.extend(b.uniform.as_ref().map(|u| (Variant::UniformInt8, u)));
            (&b.fused, run)
        }
        None => (&q.fused, int8_models.clone()),
    };
    let fp16_models = if config.compare.fp16 {
        fp16_policy_models(&config.model, eval_reference, &eval_int8, &mut warnings)
    } else {
        Vec::new()
    };
    let candidates: Vec<(&str, &Model)> = eval_int8
        .iter()
        .map(|(v, m)| (v.key(), *m))
        .chain(fp16_models.iter().map(|(k, m)| (k.as_str(), m)))
        .collect();
    let accuracy = evaluate(eval_reference, &candidates, eval_data.as_mut())
        .map_err(|e| Error::BadInput(format!("evaluation: {e}")))?;
    run.write_json("accuracy.json", &accuracy)?;
    for (k, a) in &accuracy {
        ui::info(format!(
            "accuracy {k}: SQNR {:.2} dB, cosine {:.5}",
            a.overall.sqnr_db, a.overall.cosine
        ));
        let non_finite: usize = a.outputs.iter().map(|o| o.non_finite).sum();
        if non_finite > 0 {
            let w = format!(
                "accuracy {k}: {non_finite} output values are Inf or NaN where the FP32 model's are finite (overflow, e.g. activations beyond FP16's ±65504): its SQNR is meaningless"
            );
            ui::warn(&w);
            warnings.push(w);
        }
    }

    // Engines, verification and the report.
    let product = match config.quantization.strategy {
        Strategy::Pattern => Variant::PatternInt8,
        Strategy::Uniform => Variant::UniformInt8,
    };
    let mut report = RunReport::new(
        config.model.display().to_string(),
        inputs
            .first()
            .and_then(|i| i.dims.first())
            .map_or(1, |&d| d.max(1) as usize),
        product,
    );
    report.min_sqnr_db = config.verify.min_sqnr_db;
    let variant_models: Vec<(Variant, Option<&Model>)> = vec![
        (Variant::Fp16, config.compare.fp16.then_some(&q.fused)),
        (Variant::UniformInt8, uniform.as_ref()),
        (Variant::PatternInt8, Some(&pattern)),
    ];
    let engines = engine_stage(
        &config,
        opts,
        &mut run,
        &variant_models,
        &matches_file,
        &accuracy,
        &mut report,
        &mut warnings,
    )?;
    report.warnings = warnings.clone();
    if let Some(baseline) = &config.report.baseline {
        let base =
            crate::report::RunReport::load(baseline).map_err(|e| Error::BadInput(e.to_string()))?;
        report.comparison = Some(crate::report::compare(
            &base,
            &report,
            config.report.max_latency_regression_pct,
        ));
    }
    for format in &config.report.formats {
        let text =
            crate::report::render(&report, *format).map_err(|e| Error::BadInput(e.to_string()))?;
        run.write_text(crate::report::file_name(*format), &text)?;
    }
    let mut gate_failures = report.gate_failures();
    if let Some(c) = &report.comparison {
        gate_failures.extend(c.failures().map(|f| format!("compare: {f:?}")));
    }

    let mut summary = Summary {
        trtq_version: env!("CARGO_PKG_VERSION"),
        config_file: config_path.to_path_buf(),
        output_dir: out,
        normalize: normalize_report,
        matches: count_by(q.matches.iter().map(|m| m.pattern.clone())),
        unmatched: count_by(q.unmatched.iter().filter_map(|n| {
            model
                .graph
                .find(n)
                .map(|id| model.graph.node(id).op_type.clone())
        })),
        qdq_nodes: int8_models
            .iter()
            .map(|(v, m)| (v.key().to_string(), qdq_node_count(m)))
            .collect(),
        calibration: Some(CalibrationSummary {
            method: calib.method.clone(),
            data: format!("{:?}", config.calibration.data),
            samples: calib.samples,
            passes: calib.passes,
            batch_size: calib.batch_size,
            seconds: calib.seconds,
            tensors: calib.tensors.len(),
            device: calibrated_on.clone(),
        }),
        accuracy,
        engines,
        gate_failures,
        artifacts: Vec::new(),
        warnings,
        config,
    };
    summary.artifacts = run.written().to_vec();
    summary.artifacts.push("summary.json".into());
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}

/// Normalizes `model` (read from `path`, named in errors) to `opset`, with concrete shapes for
/// the graph inputs named in `input_shapes`: the first stage of `trtq build`, shared by `trtq fp16`.
pub fn normalize_model(
    model: &mut Model,
    path: &Path,
    opset: i64,
    input_shapes: BTreeMap<String, Vec<i64>>,
) -> Result<NormalizeReport, Error> {
    let opts = NormalizeOptions {
        opset,
        input_shapes,
    };
    normalize(model, &opts, &crate::fold_evaluator).map_err(|e| Error::graph(path, e))
}

/// The key of a variant's FP16-float-policy model in accuracy.json: `fp16` for the FP16 variant
/// (the float model converted), `<variant>_fp16` for a Q/DQ model converted.
fn fp16_policy_key(variant: Variant) -> String {
    match variant {
        Variant::Fp16 => Variant::Fp16.key().to_string(),
        other => format!("{}_fp16", other.key()),
    }
}

/// The float model and each Q/DQ model with their float regions in FP16 (the policy strongly
/// typed engines run, [`crate::quantize::fp16`]), keyed by [`fp16_policy_key`], for evaluation.
/// A model the pass cannot convert is left out with a warning: its FP16 accuracy is a comparison
/// figure, not worth failing the run for.
fn fp16_policy_models(
    path: &Path,
    float_model: &Model,
    int8_models: &[(Variant, &Model)],
    warnings: &mut Vec<String>,
) -> Vec<(String, Model)> {
    let mut converted = Vec::new();
    for (variant, model) in
        std::iter::once((Variant::Fp16, float_model)).chain(int8_models.iter().copied())
    {
        let key = fp16_policy_key(variant);
        match fp16_policy(path, model) {
            Ok((fp16, report)) => {
                ui::info(format!(
                    "fp16 {key}: {} nodes FP16, {} kept FP32",
                    report.fp16_nodes,
                    report.fp32_nodes.len()
                ));
                converted.push((key, fp16));
            }
            Err(e) => {
                let w = format!("compare.fp16: the accuracy of {key} was not measured: {e}");
                ui::warn(&w);
                warnings.push(w);
            }
        }
    }
    converted
}

/// `model` with its float regions in FP16. Inserted Q/DQ values carry no recorded type yet, so
/// the model is first normalized at its own opset (which records every value's type and, Q/DQ
/// being never folded, changes nothing else), as `trtq fp16` does.
fn fp16_policy(path: &Path, model: &Model) -> Result<(Model, Fp16Report), Error> {
    let mut typed = model.clone();
    let opset = typed.opset();
    normalize_model(&mut typed, path, opset, BTreeMap::new())?;
    convert_float_to_fp16(&typed, &Fp16Options::default()).map_err(|e| Error::graph(path, e))
}

/// The calibration method of the config.
fn calib_method(config: &Config) -> Result<Method, Error> {
    use crate::config::CalibMethod;
    Ok(match config.calibration.method {
        CalibMethod::Max => Method::Max,
        CalibMethod::Entropy => Method::Entropy,
        CalibMethod::Mse => Method::Mse,
        CalibMethod::Percentile => Method::Percentile(
            crate::calib::Percentile::new(config.calibration.percentile)
                .map_err(|e| Error::BadInput(e.to_string()))?,
        ),
    })
}

fn count_by(items: impl Iterator<Item = String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// Builds each variant's engine with trtexec (when present), verifies it, and fills the report.
/// Returns a line saying what happened.
#[allow(clippy::too_many_arguments)]
fn engine_stage(
    config: &Config,
    opts: &BuildOptions,
    run: &mut OutputDir,
    variants: &[(Variant, Option<&Model>)],
    matches: &MatchesFile,
    accuracy: &BTreeMap<String, CandidateAccuracy>,
    report: &mut RunReport,
    warnings: &mut Vec<String>,
) -> Result<String, Error> {
    let trtexec = if opts.cpu_only {
        Err("--cpu given".to_string())
    } else {
        Trtexec::open(&config.tensorrt.trtexec.to_string_lossy()).map_err(|e| e.to_string())
    };
    let reason = match &trtexec {
        Ok(t) => format!(
            "built with TensorRT {} ({})",
            t.version(),
            t.path().display()
        ),
        Err(e) if config.tensorrt.required => {
            return Err(Error::MissingEnvironment(format!(
                "tensorrt.required is true but engines cannot be built: {e}"
            )));
        }
        Err(e) => {
            let w =
                format!("engine stages skipped: {e}; the report has no latency (CPU-only mode)");
            ui::warn(&w);
            warnings.push(w);
            format!("not built: {e}")
        }
    };
    let settings = BuildSettings {
        typing: match config.tensorrt.typing {
            Typing::StronglyTyped => TypingPolicy::StronglyTyped,
            Typing::Weak => TypingPolicy::Weak,
        },
        shapes: config.inputs.clone(),
        workspace_mib: Some(config.tensorrt.workspace_mib),
        builder_optimization_level: config.tensorrt.builder_optimization_level,
        timing_cache: config.tensorrt.timing_cache.clone(),
        extra_args: config.tensorrt.extra_args.clone(),
        timeout: Duration::from_secs(config.tensorrt.timeout_s),
    };
    let gates = VerifyGates {
        fail_on_broken_fusion: config.verify.fail_on_broken_fusion,
        fail_on_unfused_qdq: config.verify.fail_on_unfused_qdq,
        max_reformat_layers: config.verify.max_reformat_layers as usize,
        max_reformat_time_pct: config.verify.max_reformat_time_pct,
        fail_on_precision: config.verify.fail_on_precision,
    };
    report.tensorrt = trtexec.as_ref().ok().map(|t| t.version().to_string());
    for (variant, model) in variants {
        let Some(model) = model else { continue };
        let mut entry = match &trtexec {
            Err(_) => VariantReport::not_built(*variant, NO_TENSORRT),
            Ok(t) => {
                // Strongly typed builds run float regions in the ONNX file's type: convert them
                // to FP16 identically for every variant, so only placement differs.
                let onnx_name = format!("{}.trt.onnx", variant.key());
                let to_build = if settings.typing == TypingPolicy::StronglyTyped {
                    fp16_policy(&config.model, model)?.0
                } else {
                    (*model).clone()
                };
                let onnx = run.save_model(&to_build, &onnx_name)?;
                let built = t
                    .build(&onnx, run.path(), variant.key(), &settings)
                    .map_err(|e| {
                        if e.is_missing_environment() {
                            Error::MissingEnvironment(e.to_string())
                        } else {
                            Error::CheckFailed(e.to_string())
                        }
                    })?;
                let engine_bytes = std::fs::metadata(&built.files.engine).ok().map(|m| m.len());
                let use_matches = (*variant == Variant::PatternInt8).then_some(matches);
                let outcome = verify(&built.report, use_matches, &gates);
                let batch = report.batch_size;
                VariantReport::built(
                    *variant,
                    BuiltEngine::from_engine(
                        &built.report,
                        use_matches,
                        &outcome,
                        batch,
                        engine_bytes,
                    ),
                )
            }
        };
        entry.qdq_nodes = Some(qdq_node_count(model));
        entry.accuracy = accuracy.get(variant.key()).map(|a| a.overall.clone());
        if *variant != Variant::Fp16 {
            entry.accuracy_fp16 = accuracy
                .get(&fp16_policy_key(*variant))
                .map(|a| a.overall.clone());
        }
        report.variants.retain(|v| v.variant != *variant);
        report.variants.push(entry);
    }
    Ok(reason)
}
