//! Matrix products: `MatMul` (batched, broadcasting) and `Gemm` (transA/transB/alpha/beta/C),
//! and the safe wrapper over the `gemm` crate that convolutions use too.
//!
//! Owns: [`matmul_into`], the only place that calls `gemm::gemm` (bounds are checked here, so
//! the unsafe call cannot read or write outside the given slices).
//! Does not own: im2col or convolution geometry (see `conv`).

use super::elementwise::broadcast_shape;
use super::{Ctx, OpResult, array, contiguous, invalid, unsupported};
use crate::graph::{Attributes, Tensor};
use ndarray::ArrayD;

/// Products with at least this many multiply-adds run on all rayon threads.
const PAR_MIN_FLOPS: usize = 1 << 18;

/// A strided matrix operand over a slice: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    /// The backing data.
    pub data: &'a [T],
    /// Row stride in elements.
    pub rs: usize,
    /// Column stride in elements.
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols,
        }
    }
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// A float type the `gemm` crate multiplies.
pub(crate) trait GemmFloat: super::Num {}
impl GemmFloat for f32 {}
impl GemmFloat for f64 {}

/// `dst (m×n, rows `dst_rs` apart) = [dst +] alpha · lhs (m×k) × rhs (k×n)`; `accumulate`
/// keeps dst's values.
pub(crate) fn matmul_into<T: GemmFloat>(
    (m, n, k): (usize, usize, usize),
    lhs: Mat<T>,
    rhs: Mat<T>,
    (dst, dst_rs): (&mut [T], usize),
    accumulate: bool,
    alpha: T,
) -> OpResult<()> {
    let dst_fits = m == 0 || n == 0 || (dst_rs >= n && (m - 1) * dst_rs + n <= dst.len());
    if !dst_fits || !lhs.covers(m, k) || !rhs.covers(k, n) {
        return Err(invalid(format!(
            "internal: matrix operands too small for a {m}x{k} by {k}x{n} product"
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_rs)
                .take(m)
                .for_each(|row| row[..n].fill(T::ZERO));
        }
        return Ok(());
    }
    let parallelism = if m * n * k >= PAR_MIN_FLOPS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the checks above guarantee every element the product reads (rows < m or k,
    // columns < k or n, at the given strides) lies inside `lhs.data` / `rhs.data`, and every
    // element it writes (row < m at stride dst_rs, column < n <= dst_rs) lies inside `dst`;
    // T is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            alpha,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// Batched matrix product with numpy `matmul` semantics (1-D operands promoted).
fn matmul_typed<T: GemmFloat>(a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    let (ra, rb) = (a.ndim(), b.ndim());
    if ra == 0 || rb == 0 {
        return Err(invalid("MatMul operands must have rank >= 1"));
    }
    let a_shape: Vec<usize> = if ra == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let b_shape: Vec<usize> = if rb == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (k2, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != k2 {
        return Err(invalid(format!(
            "inner dimensions differ: {:?} x {:?}",
            a.shape(),
            b.shape()
        )));
    }
    let a_batch = &a_shape[..a_shape.len() - 2];
    let b_batch = &b_shape[..b_shape.len() - 2];
    let batch = broadcast_shape(&[a_batch, b_batch])?;
    let batches: usize = batch.iter().product();
    let a_data = contiguous(a);
    let b_data = contiguous(b);
    let mut out = vec![T::ZERO; batches * m * n];
    if b_batch.iter().all(|&d| d == 1) && a_batch == batch.as_slice() {
        // One shared right operand: fold the batch into the rows (one large product).
        matmul_into(
            (batches * m, n, k),
            Mat::rows(&a_data, k),
            Mat::rows(&b_data, n),
            (&mut out, n),
            false,
            T::ONE,
        )?;
    } else {
        let offset = |shape: &[usize], idx: usize| -> usize {
            // Flat batch index of the output mapped into a (broadcast) operand batch.
            let mut rem = idx;
            let mut flat = 0;
            let mut stride = 1;
            for (i, &d) in batch.iter().enumerate().rev() {
                let coord = rem % d;
                rem /= d;
                let pos = i as isize - (batch.len() as isize - shape.len() as isize);
                if pos >= 0 {
                    let sd = shape[pos as usize];
                    flat += if sd == 1 { 0 } else { coord } * stride;
                    stride *= sd;
                }
            }
            flat
        };
        for (bi, dst) in out.chunks_mut((m * n).max(1)).enumerate().take(batches) {
            let ao = offset(a_batch, bi) * m * k;
            let bo = offset(b_batch, bi) * k * n;
            matmul_into(
                (m, n, k),
                Mat::rows(&a_data[ao..], k),
                Mat::rows(&b_data[bo..], n),
                (dst, n),
                false,
                T::ONE,
            )?;
        }
    }
    let mut shape = batch;
    if ra > 1 {
        shape.push(m);
    }
    if rb > 1 {
        shape.push(n);
    }
    array(&shape, out)
}

fn gemm_typed<T: GemmFloat>(ctx: &Ctx, a: &ArrayD<T>, b: &ArrayD<T>) -> OpResult<ArrayD<T>> {
    if a.ndim() != 2 || b.ndim() != 2 {
        return Err(invalid("Gemm operands must be 2-D"));
    }
    let trans_a = ctx.node.attr_i_or("transA", 0) != 0;
    let trans_b = ctx.node.attr_i_or("transB", 0) != 0;
    let alpha = T::from_f64(ctx.node.attr_f_or("alpha", 1.0) as f64);
    let beta = T::from_f64(ctx.node.attr_f_or("beta", 1.0) as f64);
    let (a_rows, a_cols) = (a.shape()[0], a.shape()[1]);
    let (b_rows, b_cols) = (b.shape()[0], b.shape()[1]);
    let (m, k) = if trans_a {
        (a_cols, a_rows)
    } else {
        (a_rows, a_cols)
    };
    let (k2, n) = if trans_b {
        (b_cols, b_rows)
    } else {
        (b_rows, b_cols)
    };
    if k != k2 {
        return Err(invalid(format!(
            "inner dimensions differ: A {:?} (transA={trans_a}) x B {:?} (transB={trans_b})",
            a.shape(),
            b.shape()
        )));
    }
    let a_data = contiguous(a);
    let b_data = contiguous(b);
    let lhs = if trans_a {
        Mat::transposed(&a_data, a_cols)
    } else {
        Mat::rows(&a_data, a_cols)
    };
    let rhs = if trans_b {
        Mat::transposed(&b_data, b_cols)
    } else {
        Mat::rows(&b_data, b_cols)
    };
    let c = match ctx.opt(2) {
        Some(t) => Some(super::typed::<T>(t, "C")?),
        None => None,
    };
    let mut out = match c {
        Some(c) => {
            let cb = c.broadcast(ndarray::IxDyn(&[m, n])).ok_or_else(|| {
                invalid(format!(
                    "C {:?} does not broadcast to [{m}, {n}]",
                    c.shape()
                ))
            })?;
            cb.iter().map(|&v| v.mul(beta)).collect()
        }
        None => vec![T::ZERO; m * n],
    };
    matmul_into((m, n, k), lhs, rhs, (&mut out, n), c.is_some(), alpha)?;
    array(&[m, n], out)
}

/// Evaluates `MatMul` and `Gemm`; `Ok(None)` for other ops.
pub(crate) fn eval(op: &str, ctx: &Ctx) -> OpResult<Option<Vec<Tensor>>> {
    let out = match op {
        "MatMul" => match (ctx.input(0)?, ctx.input(1)?) {
            (Tensor::F32(a), Tensor::F32(b)) => Tensor::F32(matmul_typed(a, b)?),
            (Tensor::F64(a), Tensor::F64(b)) => Tensor::F64(matmul_typed(a, b)?),
            (a, b) => {
                return Err(unsupported(format!(
                    "MatMul of {} and {}",
                    a.dtype().as_str_name(),
                    b.dtype().as_str_name()
                )));
            }
        },
        "Gemm" => match (ctx.input(0)?, ctx.input(1)?) {
            (Tensor::F32(a), Tensor::F32(b)) => Tensor::F32(gemm_typed(ctx, a, b)?),
            (Tensor::F64(a), Tensor::F64(b)) => Tensor::F64(gemm_typed(ctx, a, b)?),
            (a, b) => {
                return Err(unsupported(format!(
                    "Gemm of {} and {}",
                    a.dtype().as_str_name(),
                    b.dtype().as_str_name()
                )));
            }
        },
        _ => return Ok(None),
    };
    Ok(Some(vec![out]))
}

#[cfg(test)]
mod tests {
    use crate::exec::cpu::eval_node;
    use crate::graph::{Node, Tensor, attr};
    use ndarray::{ArrayD, IxDyn};

    fn t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn gemm_transposes_and_scales() {
        // A^T with A = [[1,2],[3,4]] (2x2), B = [[1,0],[0,1]], C = [10, 20], alpha 2, beta 0.5
        let a = t(&[2, 2], vec![1., 2., 3., 4.]);
        let b = t(&[2, 2], vec![1., 0., 0., 1.]);
        let c = t(&[2], vec![10., 20.]);
        let node = Node::new("g", "Gemm", &["a", "b", "c"], &["y"])
            .with_attr(attr::int("transA", 1))
            .with_attr(attr::float("alpha", 2.0))
            .with_attr(attr::float("beta", 0.5));
        let y = eval_node(&node, &[Some(&a), Some(&b), Some(&c)]).unwrap();
        assert_eq!(y[0], t(&[2, 2], vec![2. + 5., 6. + 10., 4. + 5., 8. + 10.]));
    }

    #[test]
    fn matmul_broadcasts_batches_and_promotes_vectors() {
        let a = t(&[2, 1, 2], vec![1., 2., 3., 4.]);
        let b = t(&[2, 1], vec![5., 6.]);
        let y = eval_node(
            &Node::new("m", "MatMul", &["a", "b"], &["y"]),
            &[Some(&a), Some(&b)],
        );
        assert_eq!(y.unwrap()[0], t(&[2, 1, 1], vec![17., 39.]));
        let v = t(&[2], vec![1., 1.]);
        let bb = t(&[3, 2, 2], (0..12).map(|x| x as f32).collect());
        let y = eval_node(
            &Node::new("m", "MatMul", &["v", "b"], &["y"]),
            &[Some(&v), Some(&bb)],
        );
        assert_eq!(y.unwrap()[0], t(&[3, 2], vec![2., 4., 10., 12., 18., 20.]));
    }
}
