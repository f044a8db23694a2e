//! [`CudaBackend`]: runs a [`Plan`] on one GPU. Weights are uploaded once at `prepare`, batches
//! stay on the device from upload to the graph outputs, and intermediates are freed after their
//! last consumer (the same plan as the CPU backend). Nodes without a kernel run on the CPU.
//!
//! Owns: the device-resident constants, the live-value table of a run, the CPU fallback (one
//! warning per op type, then download the inputs, [`cpu::eval_node`], upload the outputs: a
//! slower node, never a wrong result), and feeding observers — on-device statistics when the
//! observer has a [`StatsSink`](crate::exec::StatsSink), a download of the tensor otherwise.
//! Does not own: the kernels ([`super::ops`], [`super::dense`]) or the schedule.

use super::gpu::Gpu;
use super::ops::{self, Arg, Args};
use super::value::{Value, download, upload};
use super::{DeviceInfo, stats};
use crate::exec::{Backend, ExecError, Observer, Plan, cpu};
use crate::graph::{Model, Tensor};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

/// Device-typed constants (float32, int8, uint8) up to this many elements also keep a host copy
/// (Clip bounds, Q/DQ scales and zero points: parameters that ops read on the host).
const HOST_COPY_MAX: usize = 4096;

/// The CUDA backend (feature `cuda`).
pub struct CudaBackend {
    gpu: Gpu,
    plan: Option<Plan>,
    constants: HashMap<String, Value>,
    host_copies: HashMap<String, Rc<Tensor>>,
    cpu_ops: BTreeSet<String>,
    peak_live_bytes: usize,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("device", &self.gpu.info)
            .field("prepared", &self.plan.is_some())
            .field("cpu_ops", &self.cpu_ops)
            .finish()
    }
}

impl CudaBackend {
    /// A backend on the GPU `info` (from [`super::probe`]) with no model prepared. Compiles the
    /// kernels on first use in the process. `tf32` lets cuBLAS use TF32 tensor cores (faster,
    /// about 1e-3 relative error); off, every GEMM is full FP32.
    pub fn new(info: DeviceInfo, tf32: bool) -> Result<CudaBackend, ExecError> {
        Ok(CudaBackend {
            gpu: Gpu::open(info, tf32)?,
            plan: None,
            constants: HashMap::new(),
            host_copies: HashMap::new(),
            cpu_ops: BTreeSet::new(),
            peak_live_bytes: 0,
        })
    }

    /// The GPU this backend runs on.
    pub fn device(&self) -> &DeviceInfo {
        &self.gpu.info
    }

    /// Largest number of device bytes held by live values (inputs included, constants not)
    /// during the last run.
    pub fn peak_live_bytes(&self) -> usize {
        self.peak_live_bytes
    }

    /// Op types that ran on the CPU because no kernel covers them (or their form).
    pub fn cpu_ops(&self) -> Vec<String> {
        self.cpu_ops.iter().cloned().collect()
    }

    /// Free device memory in bytes, now.
    pub fn free_memory(&self) -> Result<usize, ExecError> {
        self.gpu
            .context
            .mem_get_info()
            .map(|(free, _)| free)
            .map_err(|e| super::gpu::device_error("cuMemGetInfo", e))
    }

    /// Feeds `value` to the observer when it wants it: statistics computed on the device when
    /// the observer takes them, else the downloaded tensor.
    fn observe(
        gpu: &Gpu,
        name: &str,
        value: &Value,
        observer: &mut dyn Observer,
    ) -> Result<(), ExecError> {
        if !observer.wants(name) {
            return Ok(());
        }
        if let (Some((x, _)), Some(sink)) = (value.as_f32(), observer.stats_sink()) {
            let batch = stats::batch_stats(gpu, x, name, sink)?;
            sink.observe_stats(name, batch);
            return Ok(());
        }
        let tensor = download(gpu, value)?;
        observer.observe(name, &tensor);
        Ok(())
    }

    /// Runs `node` on the CPU: downloads its inputs, evaluates, uploads the outputs.
    fn on_cpu(
        gpu: &Gpu,
        cpu_ops: &mut BTreeSet<String>,
        args: &Args,
    ) -> Result<Vec<Value>, ExecError> {
        let node = args.node;
        if cpu_ops.insert(node.op_type.clone()) {
            crate::ui::warn(format!(
                "CUDA backend: no kernel for {} in the form of node '{}'; nodes of this op without a kernel run on the CPU (slower, same results)",
                node.op_type, node.name
            ));
        }
        let inputs: Vec<Option<Tensor>> = args
            .inputs
            .iter()
            .map(|a| {
                a.map(|a| match a.host {
                    Some(t) => Ok(t.clone()),
                    None => download(gpu, a.value),
                })
                .transpose()
            })
            .collect::<Result<_, _>>()?;
        let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
        cpu::eval_node(node, &refs)?
            .into_iter()
            .map(|t| upload(gpu, t))
            .collect()
    }
}

impl Backend for CudaBackend {
    fn prepare(&mut self, model: &Model) -> Result<(), ExecError> {
        let plan = Plan::new(model)?;
        let graph = &model.graph;
        self.constants.clear();
        self.host_copies.clear();
        for name in &plan.constants {
            let Some(proto) = graph.initializer(name) else {
                continue;
            };
            let tensor = Tensor::from_proto(proto)?;
            let device_type = matches!(tensor, Tensor::F32(_) | Tensor::I8(_) | Tensor::U8(_));
            if device_type && tensor.len() <= HOST_COPY_MAX {
                self.host_copies
                    .insert(name.clone(), Rc::new(tensor.clone()));
            }
            self.constants
                .insert(name.clone(), upload(&self.gpu, tensor)?);
        }
        self.cpu_ops.clear();
        self.plan = Some(plan);
        Ok(())
    }

    fn run(
        &mut self,
        mut inputs: HashMap<String, Tensor>,
        observer: &mut dyn Observer,
    ) -> Result<HashMap<String, Tensor>, ExecError> {
        let plan = self.plan.as_ref().ok_or(ExecError::NotPrepared)?;
        let gpu = &self.gpu;
        let mut live: HashMap<String, Value> = HashMap::new();
        let mut live_bytes = 0usize;
        for name in &plan.inputs {
            let tensor = inputs
                .remove(name)
                .ok_or_else(|| ExecError::MissingInput { name: name.clone() })?;
            let value = upload(gpu, tensor)?;
            Self::observe(gpu, name, &value, observer)?;
            live_bytes += value.device_bytes();
            live.insert(name.clone(), value);
        }
        // Inputs that override initializers (IR < 4 models list weights as inputs too).
        let mut overrides: HashMap<String, Value> = HashMap::new();
        for (name, tensor) in inputs {
            if !self.constants.contains_key(&name) {
                return Err(ExecError::UnknownInput {
                    name,
                    expected: plan.inputs.join(", "),
                });
            }
            overrides.insert(name, upload(gpu, tensor)?);
        }
        let mut peak = live_bytes;
        for step in &plan.steps {
            let node = &step.node;
            let outputs = {
                let args: Vec<Option<Arg>> = node
                    .inputs
                    .iter()
                    .map(|v| {
                        if v.is_empty() {
                            return Ok(None);
                        }
                        let value = live
                            .get(v)
                            .or_else(|| overrides.get(v))
                            .or_else(|| self.constants.get(v))
                            .ok_or_else(|| ExecError::InvalidNode {
                                node: node.name.clone(),
                                op: node.op_type.clone(),
                                message: format!(
                                    "input '{v}' has no value (freed or never computed)"
                                ),
                            })?;
                        let host = match value {
                            Value::Host(t) => Some(t.as_ref()),
                            Value::Device { .. } if !overrides.contains_key(v) => {
                                self.host_copies.get(v).map(Rc::as_ref)
                            }
                            Value::Device { .. } => None,
                        };
                        Ok(Some(Arg { value, host }))
                    })
                    .collect::<Result<_, ExecError>>()?;
                let args = Args {
                    node,
                    inputs: &args,
                };
                match ops::eval(gpu, &args)? {
                    Some(outputs) => outputs,
                    None => Self::on_cpu(gpu, &mut self.cpu_ops, &args)?,
                }
            };
            for (name, value) in node.outputs.iter().zip(outputs) {
                if name.is_empty() {
                    continue;
                }
                Self::observe(gpu, name, &value, observer)?;
                live_bytes += value.device_bytes();
                if let Some(old) = live.insert(name.clone(), value) {
                    live_bytes -= old.device_bytes();
                }
            }
            peak = peak.max(live_bytes);
            for v in &step.frees {
                if let Some(old) = live.remove(v) {
                    live_bytes -= old.device_bytes();
                }
            }
        }
        self.peak_live_bytes = peak;
        let mut result = HashMap::new();
        for name in &plan.outputs {
            let value = live
                .remove(name)
                .or_else(|| overrides.get(name).cloned())
                .or_else(|| self.constants.get(name).cloned())
                .ok_or_else(|| ExecError::InvalidNode {
                    node: "graph output".into(),
                    op: String::new(),
                    message: format!("'{name}' was not computed (its producer omitted it)"),
                })?;
            result.insert(name.clone(), download(gpu, &value)?);
        }
        Ok(result)
    }
}
