//! Static shape and element-type inference for the op set of DESIGN.md.
//!
//! Owns: [`ValueType`] (dtype + shape with known, symbolic or unknown dims), conversion from and
//! to `ValueInfoProto`, and [`infer_node`], the per-operator rule giving a node's output types
//! from its input types and whichever inputs are known constants.
//! Does not own: the graph walk (see `normalize`), folding, or op execution.

use super::{Attributes, GraphError, Node, Tensor};
use crate::onnx::proto::{
    DataType, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto::Dimension,
    tensor_shape_proto::dimension::Value as DimValue, type_proto,
};

/// One dimension of a static shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(i64),
    /// A named symbolic size (ONNX `dim_param`).
    Param(String),
    /// Nothing known.
    Unknown,
}

impl Dim {
    /// The size, when known.
    pub fn known(&self) -> Option<i64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }
}

/// Element type and shape of a tensor value (`shape: None` = rank unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct ValueType {
    /// ONNX element type number (`DataType`).
    pub dtype: i32,
    /// Dimensions, when the rank is known.
    pub shape: Option<Vec<Dim>>,
}

impl ValueType {
    /// A fully known type.
    pub fn known(dtype: i32, dims: &[i64]) -> ValueType {
        ValueType {
            dtype,
            shape: Some(dims.iter().map(|&d| Dim::Known(d)).collect()),
        }
    }

    /// A type with known rank and these dims.
    pub fn with_dims(dtype: i32, dims: Vec<Dim>) -> ValueType {
        ValueType {
            dtype,
            shape: Some(dims),
        }
    }

    /// A type of unknown rank.
    pub fn unranked(dtype: i32) -> ValueType {
        ValueType { dtype, shape: None }
    }

    /// The type of a tensor value.
    pub fn of_tensor(t: &Tensor) -> ValueType {
        let dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        ValueType::known(t.dtype() as i32, &dims)
    }

    /// All dims as numbers, when every one is known.
    pub fn static_dims(&self) -> Option<Vec<i64>> {
        self.shape.as_ref()?.iter().map(Dim::known).collect()
    }

    /// The rank, when known.
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// Reads a tensor type from a ValueInfoProto (`None` for non-tensor or untyped values).
    pub fn from_value_info(v: &ValueInfoProto) -> Option<ValueType> {
        let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref()?.value.as_ref() else {
            return None;
        };
        let shape = t.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(DimValue::DimValue(v)) if *v >= 0 => Dim::Known(*v),
                    Some(DimValue::DimParam(p)) if !p.is_empty() => Dim::Param(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        });
        Some(ValueType {
            dtype: t.elem_type.unwrap_or(0),
            shape,
        })
    }

    /// Writes this type as a ValueInfoProto named `name`.
    pub fn to_value_info(&self, name: &str) -> ValueInfoProto {
        let shape = self.shape.as_ref().map(|dims| TensorShapeProto {
            dim: dims
                .iter()
                .map(|d| Dimension {
                    value: match d {
                        Dim::Known(v) => Some(DimValue::DimValue(*v)),
                        Dim::Param(p) => Some(DimValue::DimParam(p.clone())),
                        Dim::Unknown => None,
                    },
                    denotation: None,
                })
                .collect(),
        });
        ValueInfoProto {
            name: Some(name.to_string()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(self.dtype),
                    shape,
                })),
                denotation: None,
            }),
            ..Default::default()
        }
    }
}

/// Infers the output types of `node`. `inputs[i]` is the type of input i (`None` when omitted
/// or unknown), `consts[i]` its value when it is a known constant.
pub fn infer_node(
    node: &Node,
    inputs: &[Option<ValueType>],
    consts: &[Option<&Tensor>],
) -> Result<Vec<ValueType>, GraphError> {
    Ctx {
        node,
        inputs,
        consts,
    }
    .infer()
}

struct Ctx<'a> {
    node: &'a Node,
    inputs: &'a [Option<ValueType>],
    consts: &'a [Option<&'a Tensor>],
}

const FLOAT: i32 = DataType::Float as i32;
const INT64: i32 = DataType::Int64 as i32;
const BOOL: i32 = DataType::Bool as i32;
const UINT8: i32 = DataType::Uint8 as i32;

impl Ctx<'_> {
    fn err(&self, message: impl Into<String>) -> GraphError {
        GraphError::InvalidNode {
            node: self.node.name.clone(),
            op: self.node.op_type.clone(),
            message: message.into(),
        }
    }

    fn input(&self, i: usize) -> Result<&ValueType, GraphError> {
        self.inputs
            .get(i)
            .and_then(Option::as_ref)
            .ok_or_else(|| self.err(format!("input {i} is missing or has no known type")))
    }

    fn opt_input(&self, i: usize) -> Option<&ValueType> {
        self.inputs.get(i).and_then(Option::as_ref)
    }

    fn const_ints(&self, i: usize) -> Option<Vec<i64>> {
        self.consts
            .get(i)
            .copied()
            .flatten()
            .and_then(Tensor::to_i64_vec)
    }

    fn has_input(&self, i: usize) -> bool {
        self.node.input(i).is_some()
    }

    fn axis(&self, axis: i64, rank: usize) -> Result<usize, GraphError> {
        let r = rank as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if (0..r.max(1)).contains(&a) || (r == 0 && a == 0) {
            Ok(a as usize)
        } else {
            Err(self.err(format!("axis {axis} is out of range for rank {rank}")))
        }
    }

    fn same_as(&self, i: usize) -> Result<Vec<ValueType>, GraphError> {
        Ok(vec![self.input(i)?.clone()])
    }

    fn infer(&self) -> Result<Vec<ValueType>, GraphError> {
        let n = self.node;
        if !n.is_onnx() {
            return Err(GraphError::UnsupportedOp {
                node: n.name.clone(),
                op: format!("{}::{}", n.domain, n.op_type),
                hint: String::new(),
            });
        }
        match n.op_type.as_str() {
            "Relu"
            | "Sigmoid"
            | "Tanh"
            | "Erf"
            | "Sqrt"
            | "Not"
            | "Identity"
            | "HardSigmoid"
            | "HardSwish"
            | "LeakyRelu"
            | "Gelu"
            | "Clip"
            | "Abs"
            | "Neg"
            | "Exp"
            | "Log"
            | "Ceil"
            | "Floor"
            | "Reciprocal"
            | "Softmax"
            | "LogSoftmax"
            | "LRN"
            | "Sin"
            | "Cos"
            | "Round"
            | "Sign"
            | "Elu"
            | "Selu"
            | "Softplus"
            | "Softsign"
            | "InstanceNormalization"
            | "ScatterND" => self.same_as(0),
            "Dropout" => {
                let x = self.input(0)?.clone();
                let mask = ValueType {
                    dtype: BOOL,
                    shape: x.shape.clone(),
                };
                Ok(vec![x, mask])
            }
            "BatchNormalization" => {
                let x = self.input(0)?.clone();
                let c = self
                    .opt_input(1)
                    .cloned()
                    .unwrap_or(ValueType::unranked(x.dtype));
                Ok(vec![x, c.clone(), c])
            }
            "LayerNormalization" => self.layer_norm(),
            "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Mod" | "PRelu" | "Sum" | "Max" | "Min"
            | "Mean" => {
                let dtype = self.input(0)?.dtype;
                Ok(vec![self.broadcast_all(dtype)?])
            }
            "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or"
            | "Xor" => Ok(vec![self.broadcast_all(BOOL)?]),
            "Where" => {
                let dtype = self.input(1)?.dtype;
                Ok(vec![self.broadcast_all(dtype)?])
            }
            "Cast" => {
                let to = n
                    .attr_i("to")
                    .ok_or_else(|| self.err("missing attribute 'to'"))?;
                Ok(vec![ValueType {
                    dtype: to as i32,
                    shape: self.input(0)?.shape.clone(),
                }])
            }
            "QuantizeLinear" => {
                let dtype = n
                    .attr_i("output_dtype")
                    .filter(|&d| d != 0)
                    .map(|d| d as i32)
                    .or_else(|| self.opt_input(2).map(|z| z.dtype))
                    .unwrap_or(UINT8);
                Ok(vec![ValueType {
                    dtype,
                    shape: self.input(0)?.shape.clone(),
                }])
            }
            "DequantizeLinear" => {
                let dtype = self.opt_input(1).map(|s| s.dtype).unwrap_or(FLOAT);
                Ok(vec![ValueType {
                    dtype,
                    shape: self.input(0)?.shape.clone(),
                }])
            }
            "Conv" => self.conv(),
            "ConvTranspose" => self.conv_transpose(),
            "MaxPool" | "AveragePool" | "LpPool" => self.pool(),
            "GlobalAveragePool" | "GlobalMaxPool" => {
                let x = self.input(0)?;
                let shape = x.shape.as_ref().map(|d| {
                    d.iter()
                        .enumerate()
                        .map(|(i, d)| if i < 2 { d.clone() } else { Dim::Known(1) })
                        .collect()
                });
                Ok(vec![ValueType {
                    dtype: x.dtype,
                    shape,
                }])
            }
            "Gemm" => self.gemm(),
            "MatMul" => self.matmul(),
            "Flatten" => self.flatten(),
            "Reshape" => self.reshape(),
            "Transpose" => self.transpose(),
            "Concat" => self.concat(),
            "Split" => self.split(),
            "Slice" => self.slice(),
            "Squeeze" => self.squeeze(),
            "Unsqueeze" => self.unsqueeze(),
            "Gather" => self.gather(),
            "Shape" => self.shape_op(),
            "Size" => Ok(vec![ValueType::known(INT64, &[])]),
            "ConstantOfShape" => {
                let dtype = n.attr_t("value").and_then(|t| t.data_type).unwrap_or(FLOAT);
                Ok(vec![match self.const_ints(0) {
                    Some(d) => ValueType::known(dtype, &d),
                    None => match self.input(0)?.static_dims() {
                        Some(s) if s.len() == 1 => {
                            ValueType::with_dims(dtype, vec![Dim::Unknown; s[0] as usize])
                        }
                        _ => ValueType::unranked(dtype),
                    },
                }])
            }
            "Constant" => self.constant(),
            "Expand" => self.expand(),
            "Range" => {
                let dtype = self.input(0)?.dtype;
                Ok(vec![ValueType::with_dims(dtype, vec![Dim::Unknown])])
            }
            "Pad" => self.pad(),
            "Resize" | "Upsample" => self.resize(),
            "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2"
            | "ReduceL1" | "ReduceSumSquare" | "ReduceLogSumExp" => self.reduce(),
            "ArgMax" | "ArgMin" => {
                let x = self.input(0)?;
                let keep = n.attr_i_or("keepdims", 1) != 0;
                let shape = match &x.shape {
                    Some(d) => {
                        let a = self.axis(n.attr_i_or("axis", 0), d.len())?;
                        Some(reduce_dims(d, &[a], keep))
                    }
                    None => None,
                };
                Ok(vec![ValueType {
                    dtype: INT64,
                    shape,
                }])
            }
            "Tile" => {
                let x = self.input(0)?;
                let shape = match (&x.shape, self.const_ints(1)) {
                    (Some(d), Some(r)) if r.len() == d.len() => Some(
                        d.iter()
                            .zip(&r)
                            .map(|(d, &r)| match d {
                                Dim::Known(v) => Dim::Known(v * r),
                                _ => Dim::Unknown,
                            })
                            .collect(),
                    ),
                    (Some(d), _) => Some(vec![Dim::Unknown; d.len()]),
                    _ => None,
                };
                Ok(vec![ValueType {
                    dtype: x.dtype,
                    shape,
                }])
            }
            other => Err(GraphError::UnsupportedOp {
                node: n.name.clone(),
                op: other.to_string(),
                hint: " (not in trtq's op set; see DESIGN.md)".into(),
            }),
        }
    }

    fn broadcast_all(&self, dtype: i32) -> Result<ValueType, GraphError> {
        let mut acc: Option<Vec<Dim>> = Some(Vec::new());
        for i in 0..self.node.inputs.len() {
            if !self.has_input(i) {
                continue;
            }
            let t = self.input(i)?;
            acc = match (acc, &t.shape) {
                (Some(a), Some(b)) => Some(broadcast(&a, b).map_err(|m| self.err(m))?),
                _ => None,
            };
        }
        Ok(ValueType { dtype, shape: acc })
    }

    fn layer_norm(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?.clone();
        let stat = match &x.shape {
            Some(d) => {
                let a = self.axis(self.node.attr_i_or("axis", -1), d.len())?;
                let mut s = d.clone();
                for dim in s.iter_mut().skip(a) {
                    *dim = Dim::Known(1);
                }
                Some(s)
            }
            None => None,
        };
        let stash = self
            .node
            .attr_i("stash_type")
            .map(|v| v as i32)
            .unwrap_or(FLOAT);
        let st = ValueType {
            dtype: stash,
            shape: stat,
        };
        Ok(vec![x, st.clone(), st])
    }

    fn spatial_attrs(&self, rank: usize, kernel: &[i64]) -> Result<Spatial, GraphError> {
        let n = self.node;
        let sp = rank.saturating_sub(2);
        let strides = n
            .attr_ints("strides")
            .map(<[i64]>::to_vec)
            .unwrap_or(vec![1; sp]);
        let dilations = n
            .attr_ints("dilations")
            .map(<[i64]>::to_vec)
            .unwrap_or(vec![1; sp]);
        let pads = n
            .attr_ints("pads")
            .map(<[i64]>::to_vec)
            .unwrap_or(vec![0; 2 * sp]);
        if strides.len() != sp
            || dilations.len() != sp
            || pads.len() != 2 * sp
            || kernel.len() != sp
        {
            return Err(self.err(format!(
                "strides/dilations/pads/kernel do not match {sp} spatial dims"
            )));
        }
        if strides
            .iter()
            .chain(&dilations)
            .chain(kernel)
            .any(|&v| v <= 0)
        {
            return Err(self.err("strides, dilations and kernel sizes must be positive"));
        }
        Ok(Spatial {
            kernel: kernel.to_vec(),
            strides,
            dilations,
            pads,
            auto_pad: n.attr_s("auto_pad").unwrap_or_else(|| "NOTSET".into()),
            ceil: n.attr_i_or("ceil_mode", 0) != 0,
        })
    }

    fn conv(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let w = self.input(1)?;
        let (Some(xd), Some(wd)) = (&x.shape, &w.shape) else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        if xd.len() < 3 || wd.len() != xd.len() {
            return Err(self.err(format!(
                "input rank {} and weight rank {} do not fit",
                xd.len(),
                wd.len()
            )));
        }
        let kernel: Vec<i64> = match self.node.attr_ints("kernel_shape") {
            Some(k) => k.to_vec(),
            None => match wd[2..].iter().map(Dim::known).collect::<Option<Vec<_>>>() {
                Some(k) => k,
                None => {
                    return Ok(vec![ValueType::with_dims(
                        x.dtype,
                        vec![Dim::Unknown; xd.len()],
                    )]);
                }
            },
        };
        let s = self.spatial_attrs(xd.len(), &kernel)?;
        let mut out = vec![xd[0].clone(), wd[0].clone()];
        for (i, d) in xd[2..].iter().enumerate() {
            out.push(
                d.known()
                    .map_or(Dim::Unknown, |v| Dim::Known(s.out_size(i, v, false))),
            );
        }
        if out[2..]
            .iter()
            .any(|d| matches!(d, Dim::Known(v) if *v <= 0))
        {
            return Err(self.err("the output would have a non-positive spatial size"));
        }
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn conv_transpose(&self) -> Result<Vec<ValueType>, GraphError> {
        let n = self.node;
        let x = self.input(0)?;
        let w = self.input(1)?;
        let (Some(xd), Some(wd)) = (&x.shape, &w.shape) else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let sp = xd.len().saturating_sub(2);
        let group = n.attr_i_or("group", 1);
        let cout = wd
            .get(1)
            .and_then(Dim::known)
            .map_or(Dim::Unknown, |c| Dim::Known(c * group));
        let mut out = vec![xd[0].clone(), cout];
        if let Some(os) = n.attr_ints("output_shape") {
            let os = &os[os.len().saturating_sub(sp)..];
            out.extend(os.iter().map(|&v| Dim::Known(v)));
            return Ok(vec![ValueType::with_dims(x.dtype, out)]);
        }
        let kernel: Vec<i64> = match n.attr_ints("kernel_shape") {
            Some(k) => k.to_vec(),
            None => match wd
                .get(2..)
                .unwrap_or(&[])
                .iter()
                .map(Dim::known)
                .collect::<Option<Vec<_>>>()
            {
                Some(k) => k,
                None => {
                    return Ok(vec![ValueType::with_dims(
                        x.dtype,
                        vec![Dim::Unknown; xd.len()],
                    )]);
                }
            },
        };
        let s = self.spatial_attrs(xd.len(), &kernel)?;
        let opad = n
            .attr_ints("output_padding")
            .map(<[i64]>::to_vec)
            .unwrap_or(vec![0; sp]);
        for (i, d) in xd[2..].iter().enumerate() {
            out.push(match d.known() {
                Some(v) if s.auto_pad.starts_with("SAME") => Dim::Known(v * s.strides[i]),
                Some(v) => {
                    let ek = (s.kernel[i] - 1) * s.dilations[i] + 1;
                    let (pb, pe) = if s.auto_pad == "VALID" {
                        (0, 0)
                    } else {
                        (s.pads[i], s.pads[i + sp])
                    };
                    Dim::Known(
                        s.strides[i] * (v - 1) + opad.get(i).copied().unwrap_or(0) + ek - pb - pe,
                    )
                }
                None => Dim::Unknown,
            });
        }
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn pool(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(xd) = &x.shape else {
            return Ok(vec![
                ValueType::unranked(x.dtype),
                ValueType::unranked(INT64),
            ]);
        };
        let kernel = self
            .node
            .attr_ints("kernel_shape")
            .ok_or_else(|| self.err("missing attribute 'kernel_shape'"))?
            .to_vec();
        let s = self.spatial_attrs(xd.len(), &kernel)?;
        let mut out = vec![xd[0].clone(), xd[1].clone()];
        for (i, d) in xd[2..].iter().enumerate() {
            out.push(
                d.known()
                    .map_or(Dim::Unknown, |v| Dim::Known(s.out_size(i, v, s.ceil))),
            );
        }
        Ok(vec![
            ValueType::with_dims(x.dtype, out.clone()),
            ValueType::with_dims(INT64, out),
        ])
    }

    fn gemm(&self) -> Result<Vec<ValueType>, GraphError> {
        let a = self.input(0)?;
        let b = self.input(1)?;
        let (Some(ad), Some(bd)) = (&a.shape, &b.shape) else {
            return Ok(vec![ValueType::with_dims(a.dtype, vec![Dim::Unknown; 2])]);
        };
        if ad.len() != 2 || bd.len() != 2 {
            return Err(self.err("Gemm needs 2-D A and B"));
        }
        let m = if self.node.attr_i_or("transA", 0) != 0 {
            &ad[1]
        } else {
            &ad[0]
        };
        let nn = if self.node.attr_i_or("transB", 0) != 0 {
            &bd[0]
        } else {
            &bd[1]
        };
        Ok(vec![ValueType::with_dims(
            a.dtype,
            vec![m.clone(), nn.clone()],
        )])
    }

    fn matmul(&self) -> Result<Vec<ValueType>, GraphError> {
        let a = self.input(0)?;
        let b = self.input(1)?;
        let (Some(ad), Some(bd)) = (&a.shape, &b.shape) else {
            return Ok(vec![ValueType::unranked(a.dtype)]);
        };
        if ad.is_empty() || bd.is_empty() {
            return Err(self.err("MatMul inputs must have rank >= 1"));
        }
        let mut ad = ad.clone();
        let mut bd = bd.clone();
        let a1 = ad.len() == 1;
        let b1 = bd.len() == 1;
        if a1 {
            ad.insert(0, Dim::Known(1));
        }
        if b1 {
            bd.push(Dim::Known(1));
        }
        let batch = broadcast(&ad[..ad.len() - 2], &bd[..bd.len() - 2]).map_err(|m| self.err(m))?;
        let mut out = batch;
        if !a1 {
            out.push(ad[ad.len() - 2].clone());
        }
        if !b1 {
            out.push(bd[bd.len() - 1].clone());
        }
        Ok(vec![ValueType::with_dims(a.dtype, out)])
    }

    fn flatten(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return Ok(vec![ValueType::with_dims(x.dtype, vec![Dim::Unknown; 2])]);
        };
        let axis = self.node.attr_i_or("axis", 1);
        let a = if axis < 0 {
            axis + d.len() as i64
        } else {
            axis
        };
        if !(0..=d.len() as i64).contains(&a) {
            return Err(self.err(format!("axis {axis} out of range for rank {}", d.len())));
        }
        let prod = |s: &[Dim]| s.iter().try_fold(1i64, |acc, d| d.known().map(|v| acc * v));
        let (l, r) = d.split_at(a as usize);
        let dim = |p: Option<i64>| p.map_or(Dim::Unknown, Dim::Known);
        Ok(vec![ValueType::with_dims(
            x.dtype,
            vec![dim(prod(l)), dim(prod(r))],
        )])
    }

    fn reshape(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(target) = self.const_ints(1) else {
            let rank = self
                .input(1)?
                .static_dims()
                .and_then(|s| s.first().copied());
            return Ok(vec![match rank {
                Some(r) => ValueType::with_dims(x.dtype, vec![Dim::Unknown; r as usize]),
                None => ValueType::unranked(x.dtype),
            }]);
        };
        let allowzero = self.node.attr_i_or("allowzero", 0) != 0;
        let mut out: Vec<Dim> = Vec::with_capacity(target.len());
        let mut infer_at = None;
        for (i, &t) in target.iter().enumerate() {
            out.push(match t {
                0 if !allowzero => x
                    .shape
                    .as_ref()
                    .and_then(|d| d.get(i).cloned())
                    .ok_or_else(|| self.err("shape copies a dim (0) beyond the input's rank"))?,
                -1 => {
                    if infer_at.replace(i).is_some() {
                        return Err(self.err("shape has more than one -1"));
                    }
                    Dim::Unknown
                }
                v if v < -1 => return Err(self.err(format!("invalid target dim {v}"))),
                v => Dim::Known(v),
            });
        }
        if let Some(i) = infer_at
            && let Some(total) = x.static_dims().map(|d| d.iter().product::<i64>())
        {
            let rest: Option<i64> = out
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .try_fold(1, |acc, (_, d)| d.known().map(|v| acc * v));
            if let Some(rest) = rest {
                if rest == 0 || total % rest != 0 {
                    return Err(self.err(format!("cannot reshape {total} elements to {target:?}")));
                }
                out[i] = Dim::Known(total / rest);
            }
        }
        if let (Some(total), Some(o)) = (
            x.static_dims().map(|d| d.iter().product::<i64>()),
            out.iter().map(Dim::known).collect::<Option<Vec<_>>>(),
        ) && total != o.iter().product::<i64>()
        {
            return Err(self.err(format!("cannot reshape {total} elements to {o:?}")));
        }
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn transpose(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let perm: Vec<i64> = match self.node.attr_ints("perm") {
            Some(p) => p.to_vec(),
            None => (0..d.len() as i64).rev().collect(),
        };
        if perm.len() != d.len() {
            return Err(self.err(format!("perm {perm:?} does not match rank {}", d.len())));
        }
        let out = perm
            .iter()
            .map(|&p| {
                d.get(p as usize)
                    .cloned()
                    .ok_or_else(|| self.err(format!("perm {perm:?} is invalid")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn concat(&self) -> Result<Vec<ValueType>, GraphError> {
        let first = self.input(0)?;
        let axis = self
            .node
            .attr_i("axis")
            .ok_or_else(|| self.err("missing attribute 'axis'"))?;
        let mut out: Option<Vec<Dim>> = None;
        let mut total = Some(0i64);
        let mut a = 0;
        for i in 0..self.node.inputs.len() {
            let t = self.input(i)?;
            let Some(d) = &t.shape else {
                return Ok(vec![ValueType::unranked(first.dtype)]);
            };
            a = self.axis(axis, d.len())?;
            total = total.and_then(|s| d[a].known().map(|v| s + v));
            out = Some(match out {
                None => d.clone(),
                Some(o) if o.len() == d.len() => o
                    .iter()
                    .zip(d)
                    .map(|(x, y)| {
                        if x == y || matches!(y, Dim::Unknown) {
                            x.clone()
                        } else if matches!(x, Dim::Unknown) {
                            y.clone()
                        } else {
                            x.clone()
                        }
                    })
                    .collect(),
                Some(_) => return Err(self.err("inputs have different ranks")),
            });
        }
        let mut out = out.unwrap_or_default();
        if let Some(slot) = out.get_mut(a) {
            *slot = total.map_or(Dim::Unknown, Dim::Known);
        }
        Ok(vec![ValueType::with_dims(first.dtype, out)])
    }

    fn split(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let count = self.node.outputs.len();
        let Some(d) = &x.shape else {
            return Ok(vec![ValueType::unranked(x.dtype); count]);
        };
        let a = self.axis(self.node.attr_i_or("axis", 0), d.len())?;
        let sizes: Option<Vec<i64>> = self
            .const_ints(1)
            .or_else(|| self.node.attr_ints("split").map(<[i64]>::to_vec))
            .or_else(|| {
                let total = d[a].known()?;
                let n = count as i64;
                let chunk = (total + n - 1) / n;
                Some(
                    (0..n)
                        .map(|i| chunk.min(total - i * chunk).max(0))
                        .collect(),
                )
            });
        Ok((0..count)
            .map(|i| {
                let mut o = d.clone();
                o[a] = sizes
                    .as_ref()
                    .and_then(|s| s.get(i))
                    .map_or(Dim::Unknown, |&v| Dim::Known(v));
                ValueType::with_dims(x.dtype, o)
            })
            .collect())
    }

    fn slice(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let (Some(starts), Some(ends)) = (self.const_ints(1), self.const_ints(2)) else {
            return Ok(vec![ValueType::with_dims(
                x.dtype,
                vec![Dim::Unknown; d.len()],
            )]);
        };
        let axes = if self.has_input(3) {
            match self.const_ints(3) {
                Some(a) => a,
                None => {
                    return Ok(vec![ValueType::with_dims(
                        x.dtype,
                        vec![Dim::Unknown; d.len()],
                    )]);
                }
            }
        } else {
            (0..starts.len() as i64).collect()
        };
        let steps = if self.has_input(4) {
            match self.const_ints(4) {
                Some(s) => s,
                None => {
                    return Ok(vec![ValueType::with_dims(
                        x.dtype,
                        vec![Dim::Unknown; d.len()],
                    )]);
                }
            }
        } else {
            vec![1; starts.len()]
        };
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(self.err("starts/ends/axes/steps lengths differ"));
        }
        let mut out = d.clone();
        for k in 0..starts.len() {
            let a = self.axis(axes[k], d.len())?;
            out[a] = match d[a].known() {
                Some(dim) => Dim::Known(
                    slice_len(dim, starts[k], ends[k], steps[k])
                        .ok_or_else(|| self.err("step is 0"))?,
                ),
                None => Dim::Unknown,
            };
        }
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn axes_input_or_attr(&self) -> Option<Option<Vec<i64>>> {
        if self.has_input(1) {
            self.const_ints(1).map(Some)
        } else {
            Some(self.node.attr_ints("axes").map(<[i64]>::to_vec))
        }
    }

    fn squeeze(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let Some(axes) = self.axes_input_or_attr() else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let drop: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| self.axis(v, d.len()))
                .collect::<Result<_, _>>()?,
            None => {
                if d.iter().any(|x| matches!(x, Dim::Unknown | Dim::Param(_))) {
                    return Ok(vec![ValueType::unranked(x.dtype)]);
                }
                d.iter()
                    .enumerate()
                    .filter(|(_, v)| **v == Dim::Known(1))
                    .map(|(i, _)| i)
                    .collect()
            }
        };
        let out = d
            .iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, v)| v.clone())
            .collect();
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn unsqueeze(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let Some(Some(axes)) = self.axes_input_or_attr() else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let rank = d.len() + axes.len();
        let mut at: Vec<usize> = axes
            .iter()
            .map(|&a| self.axis(a, rank))
            .collect::<Result<_, _>>()?;
        at.sort_unstable();
        let mut src = d.iter();
        let out = (0..rank)
            .map(|i| {
                if at.contains(&i) {
                    Some(Dim::Known(1))
                } else {
                    src.next().cloned()
                }
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.err("repeated axes"))?;
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn gather(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let idx = self.input(1)?;
        let (Some(d), Some(id)) = (&x.shape, &idx.shape) else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let a = self.axis(self.node.attr_i_or("axis", 0), d.len())?;
        let mut out = d[..a].to_vec();
        out.extend(id.iter().cloned());
        out.extend(d[a + 1..].iter().cloned());
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn shape_op(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return Ok(vec![ValueType::with_dims(INT64, vec![Dim::Unknown])]);
        };
        let r = d.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r);
        let start = clamp(self.node.attr_i_or("start", 0));
        let end = clamp(self.node.attr_i_or("end", r));
        Ok(vec![ValueType::known(INT64, &[(end - start).max(0)])])
    }

    fn constant(&self) -> Result<Vec<ValueType>, GraphError> {
        let n = self.node;
        if let Some(t) = n.attr_t("value") {
            return Ok(vec![ValueType::known(t.data_type.unwrap_or(0), &t.dims)]);
        }
        if n.attr_f("value_float").is_some() {
            return Ok(vec![ValueType::known(FLOAT, &[])]);
        }
        if n.attr_i("value_int").is_some() {
            return Ok(vec![ValueType::known(INT64, &[])]);
        }
        if let Some(v) = n.attr_floats("value_floats") {
            return Ok(vec![ValueType::known(FLOAT, &[v.len() as i64])]);
        }
        if let Some(v) = n.attr_ints("value_ints") {
            return Ok(vec![ValueType::known(INT64, &[v.len() as i64])]);
        }
        Err(self.err("Constant without a supported value attribute"))
    }

    fn expand(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(target) = self.const_ints(1) else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let t: Vec<Dim> = target.iter().map(|&v| Dim::Known(v)).collect();
        let shape = match &x.shape {
            Some(d) => Some(broadcast(d, &t).map_err(|m| self.err(m))?),
            None => None,
        };
        Ok(vec![ValueType {
            dtype: x.dtype,
            shape,
        }])
    }

    fn pad(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let pads = if self.has_input(1) {
            self.const_ints(1)
        } else {
            self.node.attr_ints("pads").map(<[i64]>::to_vec)
        };
        let Some(pads) = pads else {
            return Ok(vec![ValueType::with_dims(
                x.dtype,
                vec![Dim::Unknown; d.len()],
            )]);
        };
        let axes: Vec<usize> = match self.has_input(3).then(|| self.const_ints(3)) {
            Some(Some(a)) => a
                .iter()
                .map(|&v| self.axis(v, d.len()))
                .collect::<Result<_, _>>()?,
            Some(None) => {
                return Ok(vec![ValueType::with_dims(
                    x.dtype,
                    vec![Dim::Unknown; d.len()],
                )]);
            }
            None => (0..d.len()).collect(),
        };
        if pads.len() != 2 * axes.len() {
            return Err(self.err(format!(
                "pads has {} values for {} axes",
                pads.len(),
                axes.len()
            )));
        }
        let mut out = d.clone();
        for (k, &a) in axes.iter().enumerate() {
            out[a] = d[a].known().map_or(Dim::Unknown, |v| {
                Dim::Known(v + pads[k] + pads[k + axes.len()])
            });
        }
        Ok(vec![ValueType::with_dims(x.dtype, out)])
    }

    fn resize(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let unknown = || {
            Ok(vec![ValueType::with_dims(
                x.dtype,
                vec![Dim::Unknown; d.len()],
            )])
        };
        if self.node.op_type == "Resize" && self.has_input(3) {
            return match self.const_ints(3) {
                Some(s) if s.len() == d.len() => Ok(vec![ValueType::known(x.dtype, &s)]),
                _ => unknown(),
            };
        }
        let scales_at = if self.node.op_type == "Upsample" {
            1
        } else {
            2
        };
        let scales: Option<Vec<f32>> = match self.consts.get(scales_at).copied().flatten() {
            Some(t) => Some(t.to_f32_array().iter().copied().collect()),
            None => self.node.attr_floats("scales").map(<[f32]>::to_vec),
        };
        match scales {
            Some(s) if s.len() == d.len() => Ok(vec![ValueType::with_dims(
                x.dtype,
                d.iter()
                    .zip(&s)
                    .map(|(dim, &sc)| {
                        dim.known()
                            .map_or(Dim::Unknown, |v| Dim::Known((v as f32 * sc).floor() as i64))
                    })
                    .collect(),
            )]),
            _ => unknown(),
        }
    }

    fn reduce(&self) -> Result<Vec<ValueType>, GraphError> {
        let x = self.input(0)?;
        let Some(d) = &x.shape else {
            return self.same_as(0);
        };
        let keep = self.node.attr_i_or("keepdims", 1) != 0;
        let Some(axes) = self.axes_input_or_attr() else {
            return Ok(vec![ValueType::unranked(x.dtype)]);
        };
        let axes: Vec<usize> = match axes {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|&v| self.axis(v, d.len()))
                .collect::<Result<_, _>>()?,
            _ if self.node.attr_i_or("noop_with_empty_axes", 0) != 0 => return self.same_as(0),
            _ => (0..d.len()).collect(),
        };
        Ok(vec![ValueType::with_dims(
            x.dtype,
            reduce_dims(d, &axes, keep),
        )])
    }
}

/// Kernel geometry of a Conv or pooling node.
struct Spatial {
    kernel: Vec<i64>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pads: Vec<i64>,
    auto_pad: String,
    ceil: bool,
}

impl Spatial {
    /// Output size of spatial axis `i` for input size `v`.
    fn out_size(&self, i: usize, v: i64, ceil: bool) -> i64 {
        let sp = self.kernel.len();
        let ek = (self.kernel[i] - 1) * self.dilations[i] + 1;
        let s = self.strides[i];
        match self.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => (v + s - 1) / s,
            "VALID" => (v - ek) / s + 1,
            _ => {
                let span = v + self.pads[i] + self.pads[i + sp] - ek;
                if ceil {
                    let mut out = (span + s - 1).div_euclid(s) + 1;
                    // The last window must start inside the input or its leading padding.
                    if (out - 1) * s >= v + self.pads[i] {
                        out -= 1;
                    }
                    out
                } else {
                    span.div_euclid(s) + 1
                }
            }
        }
    }
}

/// Dims after reducing `axes` (kept as 1 or dropped).
fn reduce_dims(d: &[Dim], axes: &[usize], keep: bool) -> Vec<Dim> {
    d.iter()
        .enumerate()
        .filter_map(|(i, v)| match (axes.contains(&i), keep) {
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
            (false, _) => Some(v.clone()),
        })
        .collect()
}

/// Element count of `x[start:end:step]` along a dim of size `dim` (ONNX Slice clamping).
pub fn slice_len(dim: i64, start: i64, end: i64, step: i64) -> Option<i64> {
    if step == 0 {
        return None;
    }
    let norm = |v: i64| if v < 0 { v + dim } else { v };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, dim), norm(end).clamp(0, dim))
    } else {
        (norm(start).clamp(-1, dim - 1), norm(end).clamp(-1, dim - 1))
    };
    let n = if step > 0 {
        (e - s + step - 1) / step
    } else {
        (s - e + (-step) - 1) / (-step)
    };
    Some(n.max(0))
}

/// Multidirectional (numpy) broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let r = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| -> Dim {
        let off = r - s.len();
        if i < off {
            Dim::Known(1)
        } else {
            s[i - off].clone()
        }
    };
    (0..r)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (Dim::Known(1), y) => Ok(y),
            (x, Dim::Known(1)) => Ok(x),
            (Dim::Known(x), Dim::Known(y)) => Err(format!(
                "shapes {a:?} and {b:?} do not broadcast ({x} vs {y})"
            )),
            (Dim::Known(x), _) | (_, Dim::Known(x)) => Ok(Dim::Known(x)),
            _ => Ok(Dim::Unknown),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::attr;

    fn t(dims: &[i64]) -> Option<ValueType> {
        Some(ValueType::known(FLOAT, dims))
    }

    #[test]
    fn conv_pool_shapes() {
        let conv = Node::new("c", "Conv", &["x", "w"], &["y"])
            .with_attr(attr::ints("strides", &[2, 2]))
            .with_attr(attr::ints("pads", &[3, 3, 3, 3]));
        let out = infer_node(
            &conv,
            &[t(&[1, 3, 224, 224]), t(&[64, 3, 7, 7])],
            &[None, None],
        )
        .unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[1, 64, 112, 112]));
        let pool = Node::new("p", "MaxPool", &["y"], &["z"])
            .with_attr(attr::ints("kernel_shape", &[3, 3]))
            .with_attr(attr::ints("strides", &[2, 2]))
            .with_attr(attr::ints("pads", &[1, 1, 1, 1]));
        let out = infer_node(&pool, &[t(&[1, 64, 112, 112])], &[None]).unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[1, 64, 56, 56]));
        // ceil_mode: 6 with k=3,s=2 → floor 2, ceil 3.
        let ceil = Node::new("q", "MaxPool", &["a"], &["b"])
            .with_attr(attr::ints("kernel_shape", &[3]))
            .with_attr(attr::ints("strides", &[2]))
            .with_attr(attr::int("ceil_mode", 1));
        let out = infer_node(&ceil, &[t(&[1, 1, 6])], &[None]).unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[1, 1, 3]));
    }

    #[test]
    fn reshape_with_zero_and_minus_one() {
        let n = Node::new("r", "Reshape", &["x", "s"], &["y"]);
        let s = Tensor::from_i64s(vec![0, -1]);
        let out = infer_node(
            &n,
            &[t(&[2, 3, 4]), Some(ValueType::known(INT64, &[2]))],
            &[None, Some(&s)],
        )
        .unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[2, 12]));
        let bad = Tensor::from_i64s(vec![5, -1]);
        assert!(infer_node(&n, &[t(&[2, 3, 4]), None], &[None, Some(&bad)]).is_err());
    }

    #[test]
    fn broadcast_and_matmul() {
        let add = Node::new("a", "Add", &["x", "y"], &["z"]);
        let out = infer_node(&add, &[t(&[8, 1, 6, 1]), t(&[7, 1, 5])], &[None, None]).unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[8, 7, 6, 5]));
        let mm = Node::new("m", "MatMul", &["a", "b"], &["c"]);
        let out = infer_node(&mm, &[t(&[2, 1, 3, 4]), t(&[5, 4, 6])], &[None, None]).unwrap();
        assert_eq!(out[0], ValueType::known(FLOAT, &[2, 5, 3, 6]));
        assert!(infer_node(&add, &[t(&[3]), t(&[4])], &[None, None]).is_err());
    }

    #[test]
    fn slice_clamping() {
        assert_eq!(slice_len(10, 2, i64::MAX, 1), Some(8));
        assert_eq!(slice_len(10, -1, i64::MIN, -1), Some(10));
        assert_eq!(slice_len(10, 0, 10, 3), Some(4));
        assert_eq!(slice_len(10, 5, 2, 1), Some(0));
    }

    #[test]
    fn unsupported_op_names_node() {
        let n = Node::new("weird", "NonMaxSuppression", &["x"], &["y"]);
        let e = infer_node(&n, &[t(&[1])], &[None]).unwrap_err().to_string();
        assert!(
            e.contains("weird") && e.contains("NonMaxSuppression"),
            "{e}"
        );
    }
}
