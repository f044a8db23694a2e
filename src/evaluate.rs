//! The accuracy report: runs the FP32 model and each Q/DQ model on the same samples with the CPU
//! executor and measures how far the outputs move.
//!
//! Owns: per-output SQNR, cosine similarity, max abs error and (for classifiers, outputs shaped
//! [N, C]) top-1 agreement, also at the logits (the input of a final Sigmoid/Softmax, where a
//! detector's near-zero probability map says little). Candidates may be FP16 models (the FP16
//! float policy): the executor computes each FP16 node in f32 and rounds its outputs to FP16.
//! Does not own: data loading or execution.

use crate::calib::data::{BatchSource, DataError};
use crate::exec::{Backend, CpuBackend, ExecError, Observer};
use crate::graph::{Model, Tensor};
use crate::report::Accuracy;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Why evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Running a model failed.
    #[error("{model}: {source}")]
    Exec {
        /// Which model.
        model: String,
        /// What failed.
        source: ExecError,
    },
}

/// Accuracy of one output (or logits tensor) of one candidate.
#[derive(Clone, Debug, Serialize)]
pub struct OutputAccuracy {
    /// The graph output, or `logits(<output>)` for the input of its final Sigmoid/Softmax.
    pub name: String,
    /// SQNR in dB (`null` when identical).
    pub sqnr_db: Option<f64>,
    /// Cosine similarity.
    pub cosine: f64,
    /// Largest absolute difference.
    pub max_abs_error: f64,
    /// Share of samples whose arg-max matches (outputs shaped [N, C], C > 1).
    pub top1_agreement: Option<f64>,
    /// Values that are Inf or NaN in the candidate but finite in the reference (e.g. FP16
    /// overflow); when not 0, the SQNR is meaningless (JSON cannot hold its -inf).
    pub non_finite: usize,
}

/// Accuracy of one candidate model against the reference.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateAccuracy {
    /// All outputs together (the report's figure).
    pub overall: Accuracy,
    /// Each output, then each logits tensor.
    pub outputs: Vec<OutputAccuracy>,
}

#[derive(Default)]
struct Sums {
    signal: f64,
    noise: f64,
    dot: f64,
    cand: f64,
    max_abs: f64,
    non_finite: usize,
    top1: Option<(usize, usize)>,
}

impl Sums {
    fn add(&mut self, reference: &Tensor, candidate: &Tensor) {
        let r = reference.to_f32_array();
        let c = candidate.to_f32_array();
        for (&a, &b) in r.iter().zip(c.iter()) {
            self.non_finite += usize::from(a.is_finite() && !b.is_finite());
            let (a, b) = (a as f64, b as f64);
            self.signal += a * a;
            self.noise += (a - b) * (a - b);
            self.dot += a * b;
            self.cand += b * b;
            self.max_abs = self.max_abs.max((a - b).abs());
        }
        if r.ndim() == 2 && r.shape()[1] > 1 && r.shape() == c.shape() {
            let argmax = |row: ndarray::ArrayView1<f32>| {
                row.iter()
                    .enumerate()
                    .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                        if v > best.1 { (i, v) } else { best }
                    })
                    .0
            };
            let (mut same, mut total) = self.top1.unwrap_or((0, 0));
            for (ra, ca) in r.outer_iter().zip(c.outer_iter()) {
                let (ra, ca) = (
                    ra.into_dimensionality::<ndarray::Ix1>(),
                    ca.into_dimensionality::<ndarray::Ix1>(),
                );
                if let (Ok(ra), Ok(ca)) = (ra, ca) {
                    same += usize::from(argmax(ra) == argmax(ca));
                    total += 1;
                }
            }
            self.top1 = Some((same, total));
        }
    }

    fn merge(&mut self, o: &Sums) {
        self.signal += o.signal;
        self.noise += o.noise;
        self.dot += o.dot;
        self.cand += o.cand;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.non_finite += o.non_finite;
    }

    fn sqnr_db(&self) -> f64 {
        if self.noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (self.signal / self.noise).log10()
        }
    }

    fn cosine(&self) -> f64 {
        let d = (self.signal * self.cand).sqrt();
        if d == 0.0 { 1.0 } else { self.dot / d }
    }

    fn top1(&self) -> Option<f64> {
        self.top1
            .filter(|t| t.1 > 0)
            .map(|(s, t)| s as f64 / t as f64)
    }
}

/// The logits tensor of each graph output: the input of the final Sigmoid/Softmax producing it,
/// also through the Cast an FP16 model ends with (its graph outputs keep the FP32 type).
fn logits_of(model: &Model) -> Vec<(String, String)> {
    let g = &model.graph;
    g.outputs
        .iter()
        .filter_map(|o| {
            let name = o.name.clone()?;
            let mut n = g.node(g.producer(&name)?);
            if n.op_type == "Cast" {
                n = g.node(g.producer(n.input(0)?)?);
            }
            let logits = n.input(0)?.to_string();
            matches!(n.op_type.as_str(), "Sigmoid" | "Softmax" | "LogSoftmax")
                .then_some((name, logits))
        })
        .collect()
}

struct Capture {
    wanted: HashMap<String, String>,
    seen: HashMap<String, Tensor>,
}

impl Observer for Capture {
    fn wants(&self, value: &str) -> bool {
        self.wanted.contains_key(value)
    }
    fn observe(&mut self, value: &str, t: &Tensor) {
        if let Some(key) = self.wanted.get(value) {
            self.seen.insert(key.clone(), t.clone());
        }
    }
}

/// Runs `model` on a batch; returns outputs and logits by report name.
fn run_one(
    backend: &mut CpuBackend,
    logits: &[(String, String)],
    inputs: HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, ExecError> {
    let mut cap = Capture {
        wanted: logits
            .iter()
            .map(|(o, l)| (l.clone(), format!("logits({o})")))
            .collect(),
        seen: HashMap::new(),
    };
    let mut out = backend.run(inputs, &mut cap)?;
    out.extend(cap.seen);
    Ok(out)
}

/// Evaluates each candidate against `reference` on every batch of `data`.
pub fn evaluate(
    reference: &Model,
    candidates: &[(&str, &Model)],
    data: &mut dyn BatchSource,
) -> Result<BTreeMap<String, CandidateAccuracy>, EvaluateError> {
    let prepare = |name: &str, m: &Model| {
        CpuBackend::with_model(m).map_err(|source| EvaluateError::Exec {
            model: name.to_string(),
            source,
        })
    };
    let mut ref_backend = prepare("FP32 reference", reference)?;
    let ref_logits = logits_of(reference);
    let mut cands = candidates
        .iter()
        .map(|(n, m)| Ok((n.to_string(), prepare(n, m)?, logits_of(m))))
        .collect::<Result<Vec<_>, EvaluateError>>()?;
    let mut sums: Vec<BTreeMap<String, Sums>> = cands.iter().map(|_| BTreeMap::new()).collect();
    let mut samples = 0;
    while let Some(batch) = data.next_batch()? {
        samples += batch.samples;
        let want =
            run_one(&mut ref_backend, &ref_logits, batch.inputs.clone()).map_err(|source| {
                EvaluateError::Exec {
                    model: "FP32 reference".into(),
                    source,
                }
            })?;
        for ((name, backend, logits), acc) in cands.iter_mut().zip(sums.iter_mut()) {
            let got = run_one(backend, logits, batch.inputs.clone()).map_err(|source| {
                EvaluateError::Exec {
                    model: name.clone(),
                    source,
                }
            })?;
            for (k, w) in &want {
                if let Some(g) = got.get(k) {
                    acc.entry(k.clone()).or_default().add(w, g);
                }
            }
        }
    }
    Ok(cands
        .iter()
        .zip(sums)
        .map(|((name, _, _), per)| {
            let mut all = Sums::default();
            for (k, s) in &per {
                if !k.starts_with("logits(") {
                    all.merge(s);
                }
            }
            let top1 = per
                .iter()
                .filter(|(k, _)| !k.starts_with("logits("))
                .find_map(|(_, s)| s.top1());
            let outputs = per
                .iter()
                .map(|(k, s)| OutputAccuracy {
                    name: k.clone(),
                    sqnr_db: Some(s.sqnr_db()).filter(|v| v.is_finite()),
                    cosine: s.cosine(),
                    max_abs_error: s.max_abs,
                    top1_agreement: s.top1(),
                    non_finite: s.non_finite,
                })
                .collect();
            let overall = Accuracy {
                reference: "FP32 model, CPU executor".into(),
                samples,
                sqnr_db: all.sqnr_db(),
                cosine: all.cosine(),
                max_abs_error: all.max_abs,
                top1_agreement: top1,
            };
            (name.clone(), CandidateAccuracy { overall, outputs })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    fn f32s(values: &[f32]) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).unwrap())
    }

    #[test]
    fn overflowed_candidate_values_are_counted_not_taken_for_identical() {
        let mut sums = Sums::default();
        sums.add(
            &f32s(&[1.0, 2.0, 3.0, f32::INFINITY]),
            &f32s(&[1.0, f32::INFINITY, f32::NAN, f32::INFINITY]),
        );
        assert_eq!(sums.non_finite, 2, "the reference's own Inf is not counted");
        assert!(!sums.sqnr_db().is_finite() && sums.sqnr_db() != f64::INFINITY);
        let mut exact = Sums::default();
        exact.add(&f32s(&[1.0, 2.0]), &f32s(&[1.0, 2.0]));
        assert_eq!((exact.non_finite, exact.sqnr_db()), (0, f64::INFINITY));
    }
}
