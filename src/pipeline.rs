//! `trtq build`: the whole pipeline, stage by stage, each writing its artifact.
//!
//! Owns: the order of the stages, what each writes into the run's output directory, and the
//! run summary (`summary.json`). Every input is checked (config, model, normalization) before
//! the output directory is touched, so bad input writes nothing.
//! Does not own: any stage's logic (each is a library call of its module).

use crate::config::Config;
use crate::graph::normalize::{NormalizeOptions, NormalizeReport, normalize};
use crate::{Error, artifacts, ui};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Overrides of the config given on the command line.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Output directory instead of the config's `output_dir`.
    pub out_dir: Option<PathBuf>,
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
    /// Artifacts written, relative to the output directory.
    pub artifacts: Vec<String>,
    /// Warnings the user should read.
    pub warnings: Vec<String>,
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

    // Check every input before writing anything.
    let mut model = crate::load(&config.model)?;
    let norm_opts = NormalizeOptions {
        opset: i64::from(config.opset),
        input_shapes: config
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|&d| d as i64).collect()))
            .collect(),
    };
    let normalize_report = normalize(&mut model, &norm_opts, &crate::fold_evaluator)
        .map_err(|e| Error::graph(&config.model, e))?;
    ui::info(format!(
        "normalize: opset {} → {}, {} → {} nodes",
        normalize_report.from_opset,
        normalize_report.to_opset,
        normalize_report.nodes_before,
        normalize_report.nodes_after
    ));

    let mut run = artifacts::OutputDir::create(&out, &config.model)?;
    run.save_model(&model, "model.normalized.onnx")?;

    let mut summary = Summary {
        trtq_version: env!("CARGO_PKG_VERSION"),
        config_file: config_path.to_path_buf(),
        config,
        output_dir: out,
        normalize: normalize_report,
        artifacts: Vec::new(),
        warnings: Vec::new(),
    };
    summary.artifacts = run.written().to_vec();
    run.write_json("summary.json", &summary)?;
    Ok(summary)
}
