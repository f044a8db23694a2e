//! The device-neutral schedule of a graph: node order and when each value dies.
//!
//! Owns: [`Plan`] (topological order, for every step the values whose last reader it is, the
//! graph's inputs, outputs and constants). Every backend follows the same plan, so the peak
//! memory of a run is the largest live set, not the sum of all intermediates.
//! Does not own: decoding or placing tensors (each backend does that).

use super::ExecError;
use crate::graph::{Model, Node};
use std::collections::HashMap;

/// One node to execute, and the values to free once it has run.
#[derive(Clone, Debug)]
pub struct Step {
    /// The node (cloned from the graph so the plan does not borrow the model).
    pub node: Node,
    /// Values (node outputs or graph inputs) that no later step reads and that are not graph
    /// outputs: free them after this step.
    pub frees: Vec<String>,
}

/// The order in which to run a graph and the lifetime of each value.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The steps, in a topological order.
    pub steps: Vec<Step>,
    /// Graph inputs that are not initializers, in declaration order.
    pub inputs: Vec<String>,
    /// Graph outputs, in declaration order.
    pub outputs: Vec<String>,
    /// Initializers some step reads or that are graph outputs.
    pub constants: Vec<String>,
}

impl Plan {
    /// Computes the schedule of `model`'s graph.
    pub fn new(model: &Model) -> Result<Plan, ExecError> {
        let graph = &model.graph;
        let order = graph.topo_order()?;
        let outputs: Vec<String> = graph
            .outputs
            .iter()
            .filter_map(|o| o.name.clone())
            .collect();
        let inputs: Vec<String> = graph
            .inputs
            .iter()
            .filter_map(|i| i.name.clone())
            .filter(|n| graph.is_input(n))
            .collect();
        // Last step reading each value; a value never read dies where it is made.
        let mut last_use: HashMap<&str, usize> = HashMap::new();
        for name in &inputs {
            last_use.insert(name, 0);
        }
        for (step, &id) in order.iter().enumerate() {
            let node = graph.node(id);
            for v in node.outputs.iter().chain(node.inputs.iter()) {
                if !v.is_empty() && graph.initializer(v).is_none() {
                    last_use.insert(v, step);
                }
            }
        }
        let mut frees: Vec<Vec<String>> = vec![Vec::new(); order.len()];
        for (value, step) in last_use {
            if !outputs.iter().any(|o| o == value)
                && let Some(list) = frees.get_mut(step)
            {
                list.push(value.to_string());
            }
        }
        let mut constants: Vec<String> = graph
            .initializers()
            .map(|(name, _)| name.clone())
            .filter(|name| !graph.consumers(name).is_empty() || graph.is_output(name))
            .collect();
        constants.sort();
        let steps = order
            .iter()
            .zip(frees)
            .map(|(&id, mut frees)| {
                frees.sort();
                Step {
                    node: graph.node(id).clone(),
                    frees,
                }
            })
            .collect();
        Ok(Plan {
            steps,
            inputs,
            outputs,
            constants,
        })
    }
}
