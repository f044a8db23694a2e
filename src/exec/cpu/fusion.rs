//! Conv epilogue fusion: `Conv → [Add(residual)] → [activation]` computed as one conv whose
//! output loop adds the residual and applies the activation, when the intermediates are read by
//! nothing else.
//!
//! Owns: finding such chains in a [`Plan`] (once, at prepare time: [`conv_chains`]) and deciding
//! per run which links can be fused ([`resolve`]): an intermediate the observer wants, or a
//! residual not computed yet, ends the chain there, so observers still see every wanted tensor
//! with the values of the unfused graph.
//! Does not own: the fused kernel (see `conv`) or running the plan (see `backend`).

use super::Ctx;
use super::elementwise::{ACTIVATION_OPS, Activation};
use crate::exec::{Observer, Plan};
use crate::graph::{Node, Tensor};
use std::collections::HashMap;

/// The nodes after a conv that can be folded into its output loop (step indices in the plan).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConvChain {
    /// The `Add` reading the conv output, and the input slot of its other operand (the residual).
    add: Option<(usize, usize)>,
    /// The activation reading the conv output (or the `Add`'s), applied last.
    activation: Option<usize>,
}

/// How one run computes a conv step: what it fuses (possibly nothing).
pub(crate) struct FusedConv<'p, 't> {
    /// Added to the conv output (the `Add`'s other operand).
    pub residual: Option<&'t Tensor>,
    /// Applied last.
    pub activation: Option<Activation>,
    /// The steps computed by the fused conv (the backend skips them).
    pub absorbed: Vec<usize>,
    /// The value the fused conv produces (the last absorbed node's output).
    pub output: &'p str,
}

/// The single-output ONNX node at `step` (`None` for another shape of node).
fn single_output(plan: &Plan, step: usize) -> Option<&Node> {
    let node = &plan.steps.get(step)?.node;
    (node.is_onnx() && node.outputs.len() == 1 && !node.outputs[0].is_empty()).then_some(node)
}

/// The one (step, slot) reading `value`, if exactly one input of one node reads it and it is
/// not a graph output.
fn sole_reader(
    readers: &HashMap<&str, Vec<(usize, usize)>>,
    plan: &Plan,
    value: &str,
) -> Option<(usize, usize)> {
    match readers.get(value).map(Vec::as_slice) {
        Some(&[only]) if !plan.outputs.iter().any(|o| o == value) => Some(only),
        _ => None,
    }
}

/// Every conv step whose output flows into a fusible chain, by conv step.
pub(crate) fn conv_chains(plan: &Plan) -> HashMap<usize, ConvChain> {
    let mut readers: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (step, s) in plan.steps.iter().enumerate() {
        for (slot, v) in s.node.inputs.iter().enumerate() {
            if !v.is_empty() {
                readers.entry(v).or_default().push((step, slot));
            }
        }
    }
    let activation_after = |value: &str| {
        let (step, slot) = sole_reader(&readers, plan, value)?;
        let node = single_output(plan, step)?;
        (slot == 0 && ACTIVATION_OPS.contains(&node.op_type.as_str())).then_some(step)
    };
    let mut chains = HashMap::new();
    for step in 0..plan.steps.len() {
        let Some(conv) = single_output(plan, step).filter(|n| n.op_type == "Conv") else {
            continue;
        };
        let y = &conv.outputs[0];
        let add = sole_reader(&readers, plan, y).and_then(|(s, slot)| {
            let node = single_output(plan, s)?;
            let other = 1 - slot.min(1);
            (node.op_type == "Add" && node.inputs.len() == 2 && node.inputs[other] != *y)
                .then_some((s, other))
        });
        let activation = match add {
            Some((s, _)) => single_output(plan, s).and_then(|n| activation_after(&n.outputs[0])),
            None => activation_after(y),
        };
        if add.is_some() || activation.is_some() {
            chains.insert(step, ConvChain { add, activation });
        }
    }
    chains
}

/// How this run computes the conv at `conv_step` (`None`: not a single-output ONNX `Conv`):
/// with the links of its `chain` that can be fused now. The chain stops before an intermediate
/// the observer wants, at a residual not computed yet (`lookup` finds live values, overrides and
/// initializers), and at an activation whose other inputs are missing or invalid (the unfused
/// node then reports the error).
pub(crate) fn resolve<'p, 't>(
    plan: &'p Plan,
    conv_step: usize,
    chain: Option<&ConvChain>,
    observer: &dyn Observer,
    lookup: impl Fn(&str) -> Option<&'t Tensor>,
) -> Option<FusedConv<'p, 't>> {
    let conv = single_output(plan, conv_step).filter(|n| n.op_type == "Conv")?;
    let mut fused = FusedConv {
        residual: None,
        activation: None,
        absorbed: Vec::new(),
        output: &conv.outputs[0],
    };
    let Some(chain) = chain.filter(|_| !observer.wants(fused.output)) else {
        return Some(fused);
    };
    if let Some((step, slot)) = chain.add {
        let Some((add, residual)) =
            single_output(plan, step).and_then(|add| Some((add, lookup(&add.inputs[slot])?)))
        else {
            return Some(fused);
        };
        fused.residual = Some(residual);
        fused.absorbed.push(step);
        fused.output = &add.outputs[0];
        if observer.wants(fused.output) {
            return Some(fused);
        }
    }
    if let Some(step) = chain.activation
        && let Some(node) = single_output(plan, step)
    {
        let inputs: Option<Vec<Option<&Tensor>>> = node
            .inputs
            .iter()
            .enumerate()
            .map(|(slot, v)| match (slot, v.is_empty()) {
                (0, _) | (_, true) => Some(None),
                _ => lookup(v).map(Some),
            })
            .collect();
        let activation = inputs.and_then(|inputs| {
            let ctx = Ctx {
                node,
                inputs: &inputs,
            };
            Activation::of(&node.op_type, &ctx).ok().flatten()
        });
        if let Some(activation) = activation {
            fused.activation = Some(activation);
            fused.absorbed.push(step);
            fused.output = &node.outputs[0];
        }
    }
    Some(fused)
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::test_graph::{model, value};
    use crate::exec::{Backend, CpuBackend, NoObserver, Observer};
    use crate::graph::{Model, Tensor, attr};
    use crate::onnx::proto::{GraphProto, NodeProto};
    use ndarray::{ArrayD, IxDyn};
    use std::collections::HashMap;

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: Some(op.into()),
            name: Some(output.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn floats(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        let v = (0..n)
            .map(|i| (((i * 7 + seed * 13) % 23) as f32 - 11.0) / 9.0)
            .collect();
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    /// x → Conv(3x3, pad 1) → a → Relu → r → Conv(1x1) → c → Add(c, r) → s → Clip → y
    /// (a residual block) plus a depthwise Conv → HardSwish branch summed into the output.
    fn block() -> Model {
        let pads = attr::ints("pads", &[1; 4]);
        let group = attr::int("group", 4);
        let mut conv3 = node("Conv", &["x", "w1", "b1"], "a");
        conv3.attribute.push(pads.clone());
        let mut dw = node("Conv", &["y", "w3"], "d");
        dw.attribute.extend([pads, group]);
        let graph = GraphProto {
            node: vec![
                conv3,
                node("Relu", &["a"], "r"),
                node("Conv", &["r", "w2", "b2"], "c"),
                node("Add", &["c", "r"], "s"),
                node("Clip", &["s", "lo", "hi"], "y"),
                dw,
                node("HardSwish", &["d"], "h"),
                node("Add", &["h", "y"], "out"),
            ],
            initializer: [
                ("w1", floats(&[4, 3, 3, 3], 1)),
                ("b1", floats(&[4], 2)),
                ("w2", floats(&[4, 4, 1, 1], 3)),
                ("b2", floats(&[4], 4)),
                ("w3", floats(&[4, 1, 3, 3], 5)),
                ("lo", Tensor::F32(ArrayD::from_elem(IxDyn(&[]), -0.5))),
                ("hi", Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 1.5))),
            ]
            .iter()
            .map(|(name, t)| t.to_proto(name))
            .collect(),
            input: vec![value("x", &[2, 3, 5, 6])],
            output: vec![value("out", &[2, 4, 5, 6])],
            ..Default::default()
        };
        model(graph)
    }

    /// Wants the given values and keeps what it saw.
    struct Watch(Vec<&'static str>, HashMap<String, Tensor>);
    impl Observer for Watch {
        fn wants(&self, value: &str) -> bool {
            self.0.contains(&value)
        }
        fn observe(&mut self, value: &str, t: &Tensor) {
            self.1.insert(value.to_string(), t.clone());
        }
    }

    #[test]
    fn chains_are_found_and_fused_runs_match_unfused_ones() {
        let model = block();
        let mut backend = CpuBackend::with_model(&model).unwrap();
        let plan = backend.plan().unwrap().clone();
        let step = |name: &str| plan.steps.iter().position(|s| s.node.name == name);
        let chains = super::conv_chains(&plan);
        // conv3 → Relu (its output r has two readers, so no Add); 1x1 conv → Add(r) → Clip;
        // depthwise → HardSwish.
        assert_eq!(chains.len(), 3);
        assert_eq!(chains[&step("a").unwrap()].activation, step("r"));
        assert_eq!(chains[&step("a").unwrap()].add, None);
        let c = &chains[&step("c").unwrap()];
        assert_eq!(
            (c.add, c.activation),
            (Some((step("s").unwrap(), 1)), step("y"))
        );
        assert_eq!(chains[&step("d").unwrap()].activation, step("h"));

        let x = floats(&[2, 3, 5, 6], 9);
        let feed = || HashMap::from([("x".to_string(), x.clone())]);
        let fused = backend.run(feed(), &mut NoObserver).unwrap();
        // Wanting every intermediate disables all fusion: the reference run.
        let all = vec!["a", "r", "c", "s", "y", "d", "h"];
        let mut reference = Watch(all.clone(), HashMap::new());
        let unfused = backend.run(feed(), &mut reference).unwrap();
        assert_eq!(
            reference.1.len(),
            all.len(),
            "every wanted value is observed"
        );
        let close = |a: &Tensor, b: &Tensor| {
            let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
            a.shape() == b.shape() && a.iter().zip(b).all(|(p, q)| (p - q).abs() <= 1e-5)
        };
        assert!(close(&fused["out"], &unfused["out"]));
        // Wanting only the Add's output fuses conv + Add, then runs Clip alone: the observer
        // still sees s, with the unfused values.
        let mut partial = Watch(vec!["s", "r"], HashMap::new());
        let out = backend.run(feed(), &mut partial).unwrap();
        assert!(close(&out["out"], &unfused["out"]));
        assert!(close(&partial.1["s"], &reference.1["s"]));
        assert!(close(&partial.1["r"], &reference.1["r"]));
    }
}
