//! Elementwise ops computed in the buffer of an input that dies at the node: float32
//! activations and `Add`/`Sub`/`Mul`/`Div` whose output has that input's shape.
//!
//! Owns: [`eval_in_place`] and the choice of which ops can overwrite an input. The backend
//! decides which input dies (see `backend`); the values computed are those of the out-of-place
//! kernels (the activation formulas are shared with `elementwise`).
//! Does not own: broadcasting rules or activation formulas (see `elementwise`).

use super::elementwise::{ACTIVATION_OPS, Activation, broadcast_shape};
use super::{Ctx, OpResult, invalid};
use crate::graph::{Node, Tensor};
use ndarray::{ArrayD, Zip};
use rayon::prelude::*;

/// Element count above which in-place kernels run in parallel.
const PAR_MIN: usize = 1 << 15;

/// Values per parallel chunk of a flat in-place map.
const PAR_CHUNK: usize = 1 << 14;

/// True when `op` may be computed in the buffer of its input `slot` (the input must still have
/// the output's shape and be float32; [`eval_in_place`] checks that).
pub(crate) fn can_overwrite(op: &str, slot: usize) -> bool {
    match op {
        "Add" | "Sub" | "Mul" | "Div" => slot < 2,
        _ => slot == 0 && ACTIVATION_OPS.contains(&op),
    }
}

/// Applies `f` to every value of `data`, in parallel chunks when large.
fn map_flat(data: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if data.len() >= PAR_MIN {
        data.par_chunks_mut(PAR_CHUNK)
            .for_each(|c| c.iter_mut().for_each(|v| *v = f(*v)));
    } else {
        data.iter_mut().for_each(|v| *v = f(*v));
    }
}

/// `target = f(target, other)` where `other` broadcasts to `target`'s shape (false, target
/// untouched, when the broadcast would grow `target`). Generic so `f` is inlined and the loops
/// vectorize.
fn binary(
    target: &mut ArrayD<f32>,
    other: &ArrayD<f32>,
    f: impl Fn(f32, f32) -> f32 + Sync + Send + Copy,
) -> OpResult<bool> {
    if broadcast_shape(&[target.shape(), other.shape()])? != target.shape() {
        return Ok(false);
    }
    if other.len() == 1
        && let (Some(&o), Some(data)) = (other.iter().next(), target.as_slice_mut())
    {
        map_flat(data, |t| f(t, o));
        return Ok(true);
    }
    let other = other
        .broadcast(target.raw_dim())
        .ok_or_else(|| invalid("broadcast failed"))?;
    let parallel = target.len() >= PAR_MIN;
    let zip = Zip::from(target).and(&other);
    if parallel {
        zip.par_for_each(|t, &o| *t = f(*t, o));
    } else {
        zip.for_each(|t, &o| *t = f(*t, o));
    }
    Ok(true)
}

/// Computes `node` into `target`, the value of its input `slot` (that slot of `inputs` is
/// `None`; the others are as for `eval_node`). Returns false, leaving `target` untouched, when
/// the node cannot be computed in place (other op, element type or shape): the caller then runs
/// the ordinary kernel.
pub(crate) fn eval_in_place(
    node: &Node,
    inputs: &[Option<&Tensor>],
    target: &mut Tensor,
    slot: usize,
) -> OpResult<bool> {
    let Tensor::F32(data) = target else {
        return Ok(false);
    };
    if !node.is_onnx() || !can_overwrite(&node.op_type, slot) {
        return Ok(false);
    }
    let ctx = Ctx { node, inputs };
    let op = node.op_type.as_str();
    if let Some(act) = Activation::of(op, &ctx)? {
        match data.as_slice_mut() {
            Some(values) => act.apply_all(values),
            None => data.mapv_inplace(|v| act.apply(v)),
        }
        return Ok(true);
    }
    let Some(Tensor::F32(other)) = ctx.opt(1 - slot) else {
        return Ok(false);
    };
    // Add and Mul commute exactly in IEEE arithmetic; Sub and Div keep the operand order.
    let first = slot == 0;
    match op {
        "Add" => binary(data, other, |t, o| t + o),
        "Mul" => binary(data, other, |t, o| t * o),
        "Sub" if first => binary(data, other, |t, o| t - o),
        "Sub" => binary(data, other, |t, o| o - t),
        "Div" if first => binary(data, other, |t, o| t / o),
        "Div" => binary(data, other, |t, o| o / t),
        _ => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::eval_node;
    use crate::graph::attr;
    use ndarray::IxDyn;

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    /// Every in-place op gives exactly the out-of-place kernel's values, for either slot and
    /// for scalar, per-channel and full-shape second operands; a broadcast that would grow the
    /// target is refused.
    #[test]
    fn in_place_matches_the_kernels() {
        // 2 x 3 x 80 x 80 values: above the parallel threshold, so the chunked paths run.
        let n = 2 * 3 * 80 * 80;
        let x = t(
            &[2, 3, 80, 80],
            (0..n).map(|i| (i as f32 - 50.0) / 7.0).collect(),
        );
        let operands = [
            t(&[], vec![2.5]),
            t(&[1, 3, 1, 1], vec![0.5, -2.0, 3.0]),
            t(
                &[2, 3, 80, 80],
                (0..n).map(|i| (i % 7) as f32 + 1.0).collect(),
            ),
        ];
        let lo = t(&[], vec![-1.0]);
        let hi = t(&[], vec![2.0]);
        let mut cases: Vec<(Node, Vec<Option<&Tensor>>, usize)> = Vec::new();
        for op in ["Relu", "Sigmoid", "HardSwish"] {
            cases.push((Node::new("u", op, &["x"], &["y"]), vec![Some(&x)], 0));
        }
        cases.push((
            Node::new("h", "HardSigmoid", &["x"], &["y"]).with_attr(attr::float("alpha", 0.3)),
            vec![Some(&x)],
            0,
        ));
        cases.push((
            Node::new("l", "LeakyRelu", &["x"], &["y"]).with_attr(attr::float("alpha", 0.1)),
            vec![Some(&x)],
            0,
        ));
        cases.push((
            Node::new("c", "Clip", &["x", "lo", "hi"], &["y"]),
            vec![Some(&x), Some(&lo), Some(&hi)],
            0,
        ));
        for op in ["Add", "Sub", "Mul", "Div"] {
            for o in &operands {
                cases.push((
                    Node::new("b", op, &["x", "o"], &["y"]),
                    vec![Some(&x), Some(o)],
                    0,
                ));
                cases.push((
                    Node::new("b", op, &["o", "x"], &["y"]),
                    vec![Some(o), Some(&x)],
                    1,
                ));
            }
        }
        for (node, inputs, slot) in &cases {
            let want = eval_node(node, inputs).unwrap().remove(0);
            let mut target = x.clone();
            let mut others = inputs.clone();
            others[*slot] = None;
            assert!(eval_in_place(node, &others, &mut target, *slot).unwrap());
            assert_eq!(target, want, "{} slot {slot}", node.op_type);
        }
        // [1, 3, 1, 1] + [2, 3, 80, 80] cannot be written into the smaller operand.
        let mut small = operands[1].clone();
        let add = Node::new("b", "Add", &["o", "x"], &["y"]);
        assert!(!eval_in_place(&add, &[None, Some(&x)], &mut small, 0).unwrap());
        assert_eq!(small, operands[1]);
        // Integer tensors and ops without an in-place form are left to the kernels.
        let mut ints = Tensor::from_i64s(vec![-1, 2]);
        let relu = Node::new("r", "Relu", &["x"], &["y"]);
        assert!(!eval_in_place(&relu, &[None], &mut ints, 0).unwrap());
        let mut y = x.clone();
        let neg = Node::new("n", "Neg", &["x"], &["y"]);
        assert!(!eval_in_place(&neg, &[None], &mut y, 0).unwrap());
    }
}
