//! Semantic checks of a parsed config: values the types admit but the pipeline cannot use.
//!
//! Owns the rules that one value's type cannot express (ranges, cross-key constraints such as
//! "TensorRT builds only symmetric 8-bit INT8"). Each failure is a [`ConfigProblem`] naming the
//! key and what to change; attaching the file and position is the loader's job. Does not parse.

use super::Config;
use super::data::{DataSource, ImageData};
use super::error::ConfigProblem;
use super::schema::{BatchSize, Target, TensorQuantSection};

/// The lowest opset trtq targets: per-channel QuantizeLinear/DequantizeLinear need 13.
pub const MIN_OPSET: u32 = 13;

/// Checks every rule; the first broken one is returned.
pub(crate) fn validate(config: &Config) -> Result<(), ConfigProblem> {
    check_model_and_inputs(config)?;
    check_quantization(config)?;
    check_calibration(config)?;
    if let Some(evaluation) = &config.evaluation {
        at_least_one("evaluation.max_samples", evaluation.max_samples as u64)?;
        check_data("evaluation.data", &evaluation.data)?;
    }
    check_tensorrt(config)?;
    check_gates(config)
}

fn problem(key: &str, message: impl Into<String>, hint: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        key: key.to_owned(),
        message: message.into(),
        hint: Some(hint.into()),
    }
}

fn at_least_one(key: &str, value: u64) -> Result<(), ConfigProblem> {
    if value == 0 {
        return Err(problem(key, "must be at least 1", "use a positive number"));
    }
    Ok(())
}

fn check_model_and_inputs(config: &Config) -> Result<(), ConfigProblem> {
    if config.model.as_os_str().is_empty() {
        return Err(problem(
            "model",
            "is empty",
            "give the path of the ONNX model",
        ));
    }
    for (name, dims) in &config.inputs {
        let key = format!("inputs.{name}");
        if dims.is_empty() {
            return Err(problem(
                &key,
                "has no dimensions",
                "list every dim, e.g. [1, 3, 224, 224]",
            ));
        }
        if let Some(axis) = dims.iter().position(|dim| *dim == 0) {
            return Err(problem(
                &key,
                format!("dimension {axis} is 0"),
                "every dim must be a positive size",
            ));
        }
    }
    if config.opset < MIN_OPSET {
        return Err(problem(
            "opset",
            format!("opset {} is below {MIN_OPSET}", config.opset),
            format!("per-channel Q/DQ needs opset >= {MIN_OPSET}; the model is upgraded to it"),
        ));
    }
    Ok(())
}

fn check_quantization(config: &Config) -> Result<(), ConfigProblem> {
    let quantization = &config.quantization;
    for (key, section) in [
        ("quantization.activation", &quantization.activation),
        ("quantization.weight", &quantization.weight),
    ] {
        if !(2..=16).contains(&section.n_bits) {
            return Err(problem(
                &format!("{key}.n_bits"),
                format!("{} bits is not a quantized integer width", section.n_bits),
                "use 8 (2..=16 for targets other than tensorrt)",
            ));
        }
        if config.target == Target::Tensorrt {
            check_tensorrt_format(key, section)?;
        }
    }
    if let Some(index) = quantization
        .skip_weight_quant_for
        .iter()
        .position(String::is_empty)
    {
        return Err(problem(
            &format!("quantization.skip_weight_quant_for.{index}"),
            "is empty",
            "list ONNX op types, e.g. LayerNormalization",
        ));
    }
    Ok(())
}

/// TensorRT builds INT8 only: 8 bits, symmetric (zero point 0), per-tensor activations.
fn check_tensorrt_format(key: &str, section: &TensorQuantSection) -> Result<(), ConfigProblem> {
    let not_buildable = "TensorRT cannot build it";
    let other_target = "or set `target: generic` for another runtime";
    if section.n_bits != 8 {
        return Err(problem(
            &format!("{key}.n_bits"),
            format!(
                "{} bits with `target: tensorrt`: {not_buildable} (INT8 is 8 bits)",
                section.n_bits
            ),
            format!("use `n_bits: 8`, {other_target}"),
        ));
    }
    if !section.symmetric {
        return Err(problem(
            &format!("{key}.symmetric"),
            format!(
                "asymmetric INT8 with `target: tensorrt`: {not_buildable} (it accepts zero point 0 only)"
            ),
            format!("use `symmetric: true`, {other_target}"),
        ));
    }
    if key.ends_with("activation") && section.per_channel {
        return Err(problem(
            &format!("{key}.per_channel"),
            format!(
                "per-channel activations with `target: tensorrt`: {not_buildable} (one scale per activation tensor)"
            ),
            format!("use `per_channel: false`, {other_target}"),
        ));
    }
    Ok(())
}

fn check_calibration(config: &Config) -> Result<(), ConfigProblem> {
    let calibration = &config.calibration;
    if !(calibration.percentile > 0.0 && calibration.percentile <= 100.0) {
        return Err(problem(
            "calibration.percentile",
            format!("{} is outside (0, 100]", calibration.percentile),
            "a percentile of |x| such as 99.99",
        ));
    }
    at_least_one("calibration.max_samples", calibration.max_samples as u64)?;
    if calibration.batch_size == BatchSize::Fixed(0) {
        return Err(problem(
            "calibration.batch_size",
            "must be at least 1",
            "a positive number, or `auto`",
        ));
    }
    check_data("calibration.data", &calibration.data)
}

fn check_data(key: &str, data: &DataSource) -> Result<(), ConfigProblem> {
    if let Some(path) = data.path()
        && path.as_os_str().is_empty()
    {
        return Err(problem(
            &format!("{key}.path"),
            "is empty",
            "give a file or folder",
        ));
    }
    match data {
        DataSource::Images(images) => check_images(key, images),
        _ => Ok(()),
    }
}

fn check_images(key: &str, images: &ImageData) -> Result<(), ConfigProblem> {
    for (name, extent) in [("resize", &images.resize), ("crop", &images.crop)] {
        if extent.is_some_and(|extent| !extent.is_positive()) {
            return Err(problem(
                &format!("{key}.{name}"),
                "has a zero size",
                "sizes are positive pixels",
            ));
        }
    }
    if images.mean.iter().any(|mean| !mean.is_finite()) {
        return Err(problem(
            &format!("{key}.mean"),
            "is not finite",
            "three finite numbers",
        ));
    }
    if images
        .std
        .iter()
        .any(|std| !(std.is_finite() && *std > 0.0))
    {
        return Err(problem(
            &format!("{key}.std"),
            "must be positive and finite (inputs are divided by it)",
            "e.g. [0.229, 0.224, 0.225]",
        ));
    }
    if !(images.scale.is_finite() && images.scale > 0.0) {
        return Err(problem(
            &format!("{key}.scale"),
            "must be positive and finite",
            "0.00392156862745098 (1/255) maps pixels to 0..1, 1 keeps 0..255",
        ));
    }
    Ok(())
}

fn check_tensorrt(config: &Config) -> Result<(), ConfigProblem> {
    let tensorrt = &config.tensorrt;
    if tensorrt.trtexec.as_os_str().is_empty() {
        return Err(problem(
            "tensorrt.trtexec",
            "is empty",
            "`trtexec` or a path to it",
        ));
    }
    at_least_one("tensorrt.workspace_mib", tensorrt.workspace_mib)?;
    at_least_one("tensorrt.timeout_s", tensorrt.timeout_s)?;
    if let Some(level) = tensorrt.builder_optimization_level
        && level > 5
    {
        return Err(problem(
            "tensorrt.builder_optimization_level",
            format!("{level} is outside 0..=5"),
            "TensorRT's levels are 0 to 5 (3 is its default); null leaves trtexec's default",
        ));
    }
    Ok(())
}

fn check_gates(config: &Config) -> Result<(), ConfigProblem> {
    let pct = config.verify.max_reformat_time_pct;
    if !(0.0..=100.0).contains(&pct) {
        return Err(problem(
            "verify.max_reformat_time_pct",
            format!("{pct} is outside 0..=100"),
            "a share of total layer time in percent, e.g. 1.0",
        ));
    }
    if let Some(sqnr) = config.verify.min_sqnr_db
        && !sqnr.is_finite()
    {
        return Err(problem(
            "verify.min_sqnr_db",
            "is not finite",
            "a number of dB, or null",
        ));
    }
    let regression = config.report.max_latency_regression_pct;
    if !(regression.is_finite() && regression >= 0.0) {
        return Err(problem(
            "report.max_latency_regression_pct",
            format!("{regression} is not a non-negative percentage"),
            "e.g. 5 allows 5 % slower than the baseline",
        ));
    }
    let formats = &config.report.formats;
    let repeated = formats
        .iter()
        .enumerate()
        .find(|(i, f)| formats[..*i].contains(f));
    if let Some((index, _)) = repeated {
        return Err(problem(
            &format!("report.formats.{index}"),
            "repeats a format",
            "list each format once",
        ));
    }
    Ok(())
}
