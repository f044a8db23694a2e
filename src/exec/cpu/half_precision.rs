//! FP16 graphs on the f32 kernels: a node that reads a FLOAT16 tensor runs on its inputs widened
//! to f32 (exact) and its f32 outputs are rounded back to FLOAT16 (round to nearest, ties to
//! even), so every value the graph types as FLOAT16 holds exactly an FP16 number, while the
//! arithmetic inside a node runs in f32 — what onnxruntime's CPU provider does for the ops it has
//! no FP16 kernel for, and how TensorRT accumulates FP16 convolutions and GEMMs.
//!
//! `Cast` is the exception on the output side: its `to` attribute decides the output type, so a
//! Cast from FLOAT16 to FLOAT keeps its f32 output. Integer and bool outputs (Shape, Equal,
//! QuantizeLinear) are left as the kernel wrote them.
//!
//! Owns: [`reads_f16`] and [`eval_widened`]. Does not own: any kernel (each stays f32-only).

use crate::exec::ExecError;
use crate::graph::{Node, Tensor};
use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::ArrayD;

/// Ops whose output type comes from an attribute, not from their inputs' precision.
const OUTPUT_TYPE_FROM_ATTRIBUTE: &[&str] = &["Cast"];

/// True when any given input is a FLOAT16 tensor.
pub(super) fn reads_f16(inputs: &[Option<&Tensor>]) -> bool {
    inputs.iter().flatten().any(|t| matches!(t, Tensor::F16(_)))
}

/// Runs `eval` on `inputs` with every FLOAT16 input widened to f32, then rounds the f32 outputs
/// to FLOAT16 (unless the op's output type comes from an attribute).
pub(super) fn eval_widened(
    node: &Node,
    inputs: &[Option<&Tensor>],
    eval: impl Fn(&Node, &[Option<&Tensor>]) -> Result<Vec<Tensor>, ExecError>,
) -> Result<Vec<Tensor>, ExecError> {
    let widened: Vec<Option<Tensor>> = inputs
        .iter()
        .map(|t| match t {
            Some(Tensor::F16(a)) => Some(Tensor::F32(widen(a))),
            _ => None,
        })
        .collect();
    let args: Vec<Option<&Tensor>> = inputs
        .iter()
        .zip(&widened)
        .map(|(original, wide)| wide.as_ref().or(*original))
        .collect();
    let outputs = eval(node, &args)?;
    if OUTPUT_TYPE_FROM_ATTRIBUTE.contains(&node.op_type.as_str()) {
        return Ok(outputs);
    }
    Ok(outputs
        .into_iter()
        .map(|t| match t {
            Tensor::F32(a) => Tensor::F16(narrow(&a)),
            other => other,
        })
        .collect())
}

/// `a` as f32 (exact), converted by `half`'s slice routine (vectorized where the CPU has F16C).
fn widen(a: &ArrayD<f16>) -> ArrayD<f32> {
    let source = super::contiguous(a);
    let mut wide = vec![0f32; source.len()];
    source.convert_to_f32_slice(&mut wide);
    ArrayD::from_shape_vec(a.raw_dim(), wide).unwrap_or_else(|_| a.mapv(f32::from))
}

/// `a` rounded to FP16 (to nearest, ties to even), like [`widen`].
fn narrow(a: &ArrayD<f32>) -> ArrayD<f16> {
    let source = super::contiguous(a);
    let mut half = vec![f16::ZERO; source.len()];
    half.convert_from_f32_slice(&source);
    ArrayD::from_shape_vec(a.raw_dim(), half).unwrap_or_else(|_| a.mapv(f16::from_f32))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use half::f16;
    use ndarray::{ArrayD, IxDyn};

    fn f16s(values: &[f32]) -> Tensor {
        let v = values.iter().map(|&x| f16::from_f32(x)).collect();
        Tensor::F16(ArrayD::from_shape_vec(IxDyn(&[values.len()]), v).unwrap())
    }

    fn f32s(values: &[f32]) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).unwrap())
    }

    fn bits(t: &Tensor) -> Vec<u16> {
        match t {
            Tensor::F16(a) => a.iter().map(|v| v.to_bits()).collect(),
            other => panic!("expected FLOAT16, got {:?}", other.dtype()),
        }
    }

    #[test]
    fn an_fp16_node_computes_in_f32_and_rounds_its_output_to_nearest_even() {
        // 2048 + 1 is exactly halfway between the FP16 neighbours 2048 and 2050: ties go to the
        // even mantissa (2048). 2048 + 3 = 2051 is halfway between 2050 and 2052: up to 2052.
        let add = Node::new("add", "Add", &["a", "b"], &["y"]);
        let (a, b) = (f16s(&[2048.0, 2048.0, 0.1]), f16s(&[1.0, 3.0, 0.2]));
        let y = eval_node(&add, &[Some(&a), Some(&b)]).unwrap();
        let want = [
            2048.0,
            2052.0,
            f32::from(f16::from_f32(0.1)) + f32::from(f16::from_f32(0.2)),
        ];
        assert_eq!(
            bits(&y[0]),
            want.iter()
                .map(|&v| f16::from_f32(v).to_bits())
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn casts_keep_the_type_their_attribute_names() {
        let to_float = Node::new("c", "Cast", &["x"], &["y"]).with_attr(attr::int("to", 1));
        let x = f16s(&[0.1, -3.5]);
        let y = eval_node(&to_float, &[Some(&x)]).unwrap();
        assert_eq!(
            y[0].as_f32().unwrap().iter().copied().collect::<Vec<_>>(),
            vec![f32::from(f16::from_f32(0.1)), -3.5]
        );
        // FLOAT → FLOAT16 rounds to nearest even: 1 + 2⁻¹¹ is halfway between 1 and 1 + 2⁻¹⁰.
        let to_half = Node::new("c", "Cast", &["x"], &["y"]).with_attr(attr::int("to", 10));
        let x = f32s(&[1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11)]);
        let y = eval_node(&to_half, &[Some(&x)]).unwrap();
        assert_eq!(
            bits(&y[0]),
            vec![
                f16::from_f32(1.0).to_bits(),
                f16::from_f32(1.0 + 2.0 * 2f32.powi(-10)).to_bits()
            ]
        );
    }

    #[test]
    fn dequantize_with_an_fp16_scale_writes_fp16_and_shape_stays_int64() {
        let dq = Node::new("dq", "DequantizeLinear", &["q", "s"], &["y"]);
        let q = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-128, 1, 127]).unwrap());
        let s = Tensor::F16(ArrayD::from_elem(IxDyn(&[]), f16::from_f32(0.1)));
        let y = eval_node(&dq, &[Some(&q), Some(&s)]).unwrap();
        let scale = f32::from(f16::from_f32(0.1));
        assert_eq!(
            bits(&y[0]),
            [-128.0, 1.0, 127.0]
                .iter()
                .map(|&v: &f32| f16::from_f32(v * scale).to_bits())
                .collect::<Vec<_>>()
        );
        let shape = Node::new("s", "Shape", &["x"], &["y"]);
        let y = eval_node(&shape, &[Some(&f16s(&[1.0, 2.0]))]).unwrap();
        assert_eq!(y[0].to_i64_vec(), Some(vec![2]));
    }
}
