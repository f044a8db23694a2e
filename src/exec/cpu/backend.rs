//! [`CpuBackend`]: runs a [`Plan`] with the CPU kernels, freeing each intermediate after its
//! last consumer and reporting the peak of live bytes.
//!
//! Owns: decoded initializers, the live-value table of a run (an elementwise node whose input
//! dies at it reuses that input's buffer; a conv runs with its fusible epilogue chain, see
//! `fusion`; dead large intermediates are recycled into conv outputs, see `buffers`), input checks
//! against the graph's declared types.
//! Does not own: the kernels (see [`super::eval_node`]) or the schedule (see [`Plan`]).

use super::buffers::SpareBuffers;
use super::fusion::{self, ConvChain, conv_chains};
use super::{can_overwrite, eval_conv_fused, eval_node, eval_node_in_place};
use crate::exec::{Backend, ExecError, Observer, Plan};
use crate::graph::{Model, Node, Tensor};
use crate::onnx::proto::tensor_shape_proto::dimension;
use crate::onnx::proto::type_proto;
use std::collections::HashMap;

/// A declared graph input: element type and dims (`None` = symbolic or unknown).
#[derive(Clone, Debug)]
struct InputDecl {
    dtype: Option<i32>,
    dims: Option<Vec<Option<usize>>>,
}

/// The CPU backend: ndarray kernels, GEMM through the `gemm` crate, rayon on all cores.
#[derive(Debug, Default)]
pub struct CpuBackend {
    plan: Option<Plan>,
    /// Conv steps whose epilogue chain may be fused (see `fusion`), by step.
    chains: HashMap<usize, ConvChain>,
    /// Storage of dead intermediates, reused for conv outputs (kept across runs, bounded).
    spare: SpareBuffers,
    constants: HashMap<String, Tensor>,
    declared: HashMap<String, InputDecl>,
    peak_live_bytes: usize,
}

fn bytes(t: &Tensor) -> usize {
    t.len() * t.dtype().byte_size().unwrap_or(1)
}

impl CpuBackend {
    /// A backend with no model prepared.
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    /// A backend with `model` prepared.
    pub fn with_model(model: &Model) -> Result<CpuBackend, ExecError> {
        let mut b = CpuBackend::new();
        b.prepare(model)?;
        Ok(b)
    }

    /// The prepared schedule, if any.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// Largest number of bytes held by live intermediates (inputs included, initializers not)
    /// during the last run.
    pub fn peak_live_bytes(&self) -> usize {
        self.peak_live_bytes
    }

    fn check_input(&self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        let Some(decl) = self.declared.get(name) else {
            return Ok(());
        };
        let mismatch = |message: String| ExecError::InputMismatch {
            name: name.to_string(),
            message,
        };
        if let Some(dtype) = decl.dtype
            && dtype != t.dtype() as i32
        {
            return Err(mismatch(format!(
                "element type {} given, the graph declares {}",
                t.dtype().as_str_name(),
                crate::graph::tensor::dtype_name(dtype)
            )));
        }
        if let Some(dims) = &decl.dims {
            let fits = dims.len() == t.shape().len()
                && dims
                    .iter()
                    .zip(t.shape())
                    .all(|(d, &s)| d.is_none_or(|d| d == s));
            if !fits {
                return Err(mismatch(format!(
                    "shape {:?} given, the graph declares {:?} (None = any)",
                    t.shape(),
                    dims
                )));
            }
        }
        Ok(())
    }
}

/// The input slot of `node` whose buffer its output may take: an input of an op with an
/// in-place form that dies at this step (`frees`, sorted), is read only once by the node and is
/// held in `live` (not a constant or a caller's override).
fn dying_input(node: &Node, frees: &[String], live: &HashMap<String, Tensor>) -> Option<usize> {
    if node.outputs.len() != 1 {
        return None;
    }
    node.inputs.iter().enumerate().position(|(slot, v)| {
        !v.is_empty()
            && can_overwrite(node, slot)
            && frees.binary_search(v).is_ok()
            && node.inputs.iter().filter(|i| *i == v).count() == 1
            && live.contains_key(v)
    })
}

/// The node's inputs by position (`None` for omitted ones and for `skip`), looked up in the
/// live values, then the caller's overrides, then the initializers.
fn gather<'a>(
    node: &Node,
    live: &'a HashMap<String, Tensor>,
    overrides: &'a HashMap<String, Tensor>,
    constants: &'a HashMap<String, Tensor>,
    skip: Option<usize>,
) -> Result<Vec<Option<&'a Tensor>>, ExecError> {
    node.inputs
        .iter()
        .enumerate()
        .map(|(slot, v)| {
            if v.is_empty() || skip == Some(slot) {
                return Ok(None);
            }
            live.get(v)
                .or_else(|| overrides.get(v))
                .or_else(|| constants.get(v))
                .map(Some)
                .ok_or_else(|| ExecError::InvalidNode {
                    node: node.name.clone(),
                    op: node.op_type.clone(),
                    message: format!("input '{v}' has no value (freed or never computed)"),
                })
        })
        .collect()
}

fn declaration(v: &crate::onnx::proto::ValueInfoProto) -> InputDecl {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(tt)) => InputDecl {
            dtype: tt.elem_type.filter(|&d| d != 0),
            dims: tt.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            }),
        },
        _ => InputDecl {
            dtype: None,
            dims: None,
        },
    }
}

impl Backend for CpuBackend {
    fn prepare(&mut self, model: &Model) -> Result<(), ExecError> {
        let plan = Plan::new(model)?;
        let graph = &model.graph;
        let mut constants = HashMap::new();
        for name in &plan.constants {
            if let Some(t) = graph.initializer(name) {
                constants.insert(name.clone(), Tensor::from_proto(t)?);
            }
        }
        self.declared = graph
            .inputs
            .iter()
            .filter_map(|v| Some((v.name.clone()?, declaration(v))))
            .collect();
        self.constants = constants;
        self.chains = conv_chains(&plan);
        self.spare = SpareBuffers::default();
        self.plan = Some(plan);
        Ok(())
    }

    fn run(
        &mut self,
        mut inputs: HashMap<String, Tensor>,
        observer: &mut dyn Observer,
    ) -> Result<HashMap<String, Tensor>, ExecError> {
        let plan = self.plan.as_ref().ok_or(ExecError::NotPrepared)?;
        let mut live: HashMap<String, Tensor> = HashMap::new();
        let mut live_bytes = 0usize;
        for name in &plan.inputs {
            let t = inputs
                .remove(name)
                .ok_or_else(|| ExecError::MissingInput { name: name.clone() })?;
            self.check_input(name, &t)?;
            if observer.wants(name) {
                observer.observe(name, &t);
            }
            live_bytes += bytes(&t);
            live.insert(name.clone(), t);
        }
        // Inputs that override initializers (IR < 4 models list weights as inputs too).
        let mut overrides: HashMap<String, Tensor> = HashMap::new();
        for (name, t) in inputs {
            if !self.constants.contains_key(&name) {
                return Err(ExecError::UnknownInput {
                    name,
                    expected: plan.inputs.join(", "),
                });
            }
            self.check_input(&name, &t)?;
            overrides.insert(name, t);
        }
        let mut peak = live_bytes;
        // Steps already computed by a fused conv earlier in this run.
        let mut absorbed = vec![false; plan.steps.len()];
        for (index, step) in plan.steps.iter().enumerate() {
            let node = &step.node;
            let produced: Vec<(&str, Tensor)> = if absorbed[index] {
                Vec::new()
            } else if let Some(fused) =
                fusion::resolve(plan, index, self.chains.get(&index), &*observer, |v| {
                    live.get(v)
                        .or_else(|| overrides.get(v))
                        .or_else(|| self.constants.get(v))
                })
                && let Some(t) = eval_conv_fused(
                    node,
                    &gather(node, &live, &overrides, &self.constants, None)?,
                    &fused,
                    &mut self.spare,
                )?
            {
                for &s in &fused.absorbed {
                    absorbed[s] = true;
                }
                vec![(fused.output, t)]
            } else {
                let mut outputs = None;
                // An elementwise node whose input dies here writes into that input's buffer.
                if let Some(slot) = dying_input(node, &step.frees, &live)
                    && let Some(mut target) = live.remove(&node.inputs[slot])
                {
                    let args = gather(node, &live, &overrides, &self.constants, Some(slot))?;
                    if eval_node_in_place(node, &args, &mut target, slot)? {
                        live_bytes -= bytes(&target);
                        outputs = Some(vec![target]);
                    } else {
                        live.insert(node.inputs[slot].clone(), target);
                    }
                }
                let outputs = match outputs {
                    Some(outputs) => outputs,
                    None => eval_node(
                        node,
                        &gather(node, &live, &overrides, &self.constants, None)?,
                    )?,
                };
                node.outputs
                    .iter()
                    .map(String::as_str)
                    .zip(outputs)
                    .filter(|(name, _)| !name.is_empty())
                    .collect()
            };
            for (name, t) in produced {
                if observer.wants(name) {
                    observer.observe(name, &t);
                }
                live_bytes += bytes(&t);
                if let Some(old) = live.insert(name.to_string(), t) {
                    live_bytes -= bytes(&old);
                    self.spare.keep(old);
                }
            }
            peak = peak.max(live_bytes);
            for v in &step.frees {
                if let Some(t) = live.remove(v) {
                    live_bytes -= bytes(&t);
                    self.spare.keep(t);
                }
            }
        }
        self.peak_live_bytes = peak;
        let mut result = HashMap::new();
        for name in &plan.outputs {
            let t = live
                .remove(name)
                .or_else(|| overrides.get(name).cloned())
                .or_else(|| self.constants.get(name).cloned())
                .ok_or_else(|| ExecError::InvalidNode {
                    node: "graph output".into(),
                    op: String::new(),
                    message: format!("'{name}' was not computed (its producer omitted it)"),
                })?;
            result.insert(name.clone(), t);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::NoObserver;
    use crate::exec::cpu::test_graph::{model, value};
    use crate::onnx::proto::{GraphProto, NodeProto};
    use ndarray::{ArrayD, IxDyn};

    /// x -> Relu -> a -> Neg -> b -> Relu -> y, all [n] float.
    fn chain(n: i64, last_op: &str) -> Model {
        let node = |op: &str, i: &str, o: &str| NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("{op}_{o}")),
            input: vec![i.into()],
            output: vec![o.into()],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![
                node("Relu", "x", "a"),
                node("Neg", "a", "b"),
                node(last_op, "b", "y"),
            ],
            input: vec![value("x", &[n])],
            output: vec![value("y", &[n])],
            ..Default::default()
        };
        model(graph)
    }

    fn input(n: usize) -> HashMap<String, Tensor> {
        let x = ArrayD::from_shape_vec(IxDyn(&[n]), (0..n).map(|i| i as f32 - 5.0).collect());
        HashMap::from([("x".to_string(), Tensor::F32(x.unwrap()))])
    }

    struct Recorder(Vec<(String, usize)>);
    impl Observer for Recorder {
        fn wants(&self, value: &str) -> bool {
            value != "b"
        }
        fn observe(&mut self, value: &str, t: &Tensor) {
            self.0.push((value.to_string(), t.len()));
        }
    }

    #[test]
    fn intermediates_are_freed_and_observed() {
        let mut b = CpuBackend::with_model(&chain(1000, "Relu")).unwrap();
        let mut rec = Recorder(Vec::new());
        let out = b.run(input(1000), &mut rec).unwrap();
        let y = out["y"].as_f32().unwrap();
        assert_eq!(
            y.iter().filter(|&&v| v != 0.0).count(),
            0,
            "relu(-relu(x)) is 0"
        );
        // Never more than two [1000] f32 tensors alive at once (the sum would be 4 of them).
        assert_eq!(b.peak_live_bytes(), 2 * 4000);
        let seen: Vec<&str> = rec.0.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(seen, vec!["x", "a", "y"]);
    }

    #[test]
    fn bad_inputs_and_ops_are_named() {
        let mut b = CpuBackend::with_model(&chain(4, "Relu")).unwrap();
        let err = b.run(HashMap::new(), &mut NoObserver).unwrap_err();
        assert!(matches!(err, ExecError::MissingInput { ref name } if name == "x"));
        let mut extra = input(4);
        extra.insert("z".into(), Tensor::from_i64s(vec![1]));
        assert!(matches!(
            b.run(extra, &mut NoObserver),
            Err(ExecError::UnknownInput { .. })
        ));
        let wrong_shape = input(5);
        assert!(matches!(
            b.run(wrong_shape, &mut NoObserver),
            Err(ExecError::InputMismatch { .. })
        ));
        let mut b = CpuBackend::with_model(&chain(4, "NoSuchOp")).unwrap();
        let err = b.run(input(4), &mut NoObserver).unwrap_err();
        assert!(err.to_string().contains("NoSuchOp_y") && err.to_string().contains("NoSuchOp"));
        assert!(matches!(
            CpuBackend::new().run(input(4), &mut NoObserver),
            Err(ExecError::NotPrepared)
        ));
    }
}
