"""Writes onnxruntime reference cases for tests/exec_conformance.rs (TRTQ_ORT_CASES).

Each case is a folder in the ONNX backend-test layout: model.onnx and
test_data_set_0/{input_*.pb, output_*.pb}, outputs computed by onnxruntime (CPU, 2 threads).

    python tests/exec_ort_cases.py OUT_DIR                      # single-op cases (tricky semantics)
    python tests/exec_ort_cases.py OUT_DIR name:model.onnx:1x3x224x224 ...   # whole models
"""

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


def write_case(out, name, model, feeds):
    d = os.path.join(out, name, "test_data_set_0")
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(out, name, "model.onnx"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    outputs = sess.run(None, dict(zip(names, feeds)))
    for i, x in enumerate(feeds):
        with open(os.path.join(d, f"input_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(x).SerializeToString())
    for i, y in enumerate(outputs):
        with open(os.path.join(d, f"output_{i}.pb"), "wb") as f:
            f.write(numpy_helper.from_array(y).SerializeToString())


def single(out, name, op, inputs, attrs=None, consts=None, opset=OPSET, out_type=TensorProto.FLOAT, n_out=1):
    """One node; `inputs` are fed arrays, `consts` (name -> array) become initializers."""
    consts = consts or {}
    feed_names = [f"in{i}" for i in range(len(inputs))]
    node_inputs = feed_names + list(consts)
    outs = [f"out{i}" for i in range(n_out)]
    node = helper.make_node(op, node_inputs, outs, name=name, **(attrs or {}))
    graph = helper.make_graph(
        [node],
        name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(x.dtype), x.shape) for n, x in zip(feed_names, inputs)],
        [helper.make_tensor_value_info(o, out_type, None) for o in outs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    write_case(out, name, model, inputs)


def op_cases(out):
    rng = np.random.default_rng(0)
    img = rng.standard_normal((1, 2, 5, 7)).astype(np.float32)
    # Resize: every nearest_mode x coordinate mode, linear and cubic, up and down.
    for mode in ["nearest", "linear", "cubic"]:
        for ctm in ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"]:
            for tag, scales in [("up", [1, 1, 2.0, 1.5]), ("down", [1, 1, 0.6, 0.5])]:
                nearest_modes = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] if mode == "nearest" else [None]
                for nm in nearest_modes:
                    attrs = {"mode": mode, "coordinate_transformation_mode": ctm}
                    if nm:
                        attrs["nearest_mode"] = nm
                    name = f"resize_{mode}_{ctm}_{tag}" + (f"_{nm}" if nm else "")
                    single(out, name, "Resize", [img], attrs, {"roi": np.array([], np.float32), "scales": np.array(scales, np.float32)})
    single(out, "resize_sizes_linear", "Resize", [img], {"mode": "linear"},
           {"roi": np.array([], np.float32), "scales": np.array([], np.float32), "sizes": np.array([1, 2, 9, 4], np.int64)})
    single(out, "resize_cubic_exclude_outside", "Resize", [img], {"mode": "cubic", "exclude_outside": 1, "cubic_coeff_a": -0.5},
           {"roi": np.array([], np.float32), "scales": np.array([1, 1, 1.7, 2.3], np.float32)})
    # Pools: ceil_mode, count_include_pad, dilations, auto_pad.
    x = rng.standard_normal((1, 3, 9, 10)).astype(np.float32)
    for cip in [0, 1]:
        for ceil in [0, 1]:
            single(out, f"avgpool_k3s2p1_cip{cip}_ceil{ceil}", "AveragePool", [x],
                   {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": cip, "ceil_mode": ceil})
    single(out, "maxpool_ceil_dilated", "MaxPool", [x], {"kernel_shape": [2, 3], "strides": [2, 2], "dilations": [2, 1], "ceil_mode": 1})
    for ap in ["SAME_UPPER", "SAME_LOWER", "VALID"]:
        single(out, f"maxpool_{ap}", "MaxPool", [x], {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": ap})
        single(out, f"conv_{ap}", "Conv", [x], {"auto_pad": ap, "strides": [2, 2]},
               {"w": rng.standard_normal((4, 3, 3, 2)).astype(np.float32)})
    single(out, "conv_grouped_dilated_bias", "Conv", [rng.standard_normal((2, 4, 11, 9)).astype(np.float32)],
           {"group": 2, "dilations": [2, 1], "pads": [2, 1, 0, 1], "strides": [1, 2]},
           {"w": rng.standard_normal((6, 2, 3, 3)).astype(np.float32), "b": rng.standard_normal(6).astype(np.float32)})
    single(out, "conv_depthwise_s2", "Conv", [rng.standard_normal((1, 8, 15, 15)).astype(np.float32)],
           {"group": 8, "pads": [1, 1, 1, 1], "strides": [2, 2]},
           {"w": rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "b": rng.standard_normal(8).astype(np.float32)})
    single(out, "convtranspose_outshape_same_upper", "ConvTranspose", [rng.standard_normal((1, 4, 5, 6)).astype(np.float32)],
           {"strides": [2, 2], "output_shape": [10, 12], "auto_pad": "SAME_UPPER"},
           {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)})
    single(out, "convtranspose_groups_pads_outpad", "ConvTranspose", [rng.standard_normal((1, 4, 5, 6)).astype(np.float32)],
           {"strides": [2, 3], "pads": [1, 0, 0, 1], "output_padding": [1, 2], "group": 2, "dilations": [1, 2]},
           {"w": rng.standard_normal((4, 2, 3, 2)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)})
    # Q/DQ: per tensor and per axis, int8 and uint8, ties.
    q_in = (np.arange(-40, 40, dtype=np.float32).reshape(2, 4, 10) / 4.0)
    single(out, "quantize_per_tensor_int8", "QuantizeLinear", [q_in], {},
           {"s": np.array(0.5, np.float32), "z": np.array(3, np.int8)}, out_type=TensorProto.INT8)
    single(out, "quantize_per_axis_uint8", "QuantizeLinear", [q_in], {"axis": 1},
           {"s": np.array([0.5, 0.25, 1.0, 0.1], np.float32), "z": np.array([128, 0, 10, 255], np.uint8)}, out_type=TensorProto.UINT8)
    single(out, "dequantize_per_axis_int8", "DequantizeLinear", [rng.integers(-128, 127, (2, 4, 3), dtype=np.int8)], {"axis": 1},
           {"s": np.array([0.5, 0.25, 1.0, 0.1], np.float32), "z": np.array([1, -2, 0, 5], np.int8)})
    # Shape and index ops.
    data = rng.standard_normal((4, 5, 6)).astype(np.float32)
    single(out, "slice_negative_steps", "Slice", [data], {},
           {"st": np.array([-1, 10, 1], np.int64), "en": np.array([-100, 0, 6], np.int64),
            "ax": np.array([0, 1, 2], np.int64), "sp": np.array([-2, -1, 2], np.int64)})
    for mode in ["constant", "reflect", "edge", "wrap"]:
        single(out, f"pad_{mode}", "Pad", [data], {"mode": mode},
               {"p": np.array([1, 0, 2, 2, 1, -1], np.int64)}, opset=19)
    single(out, "gather_axis1_negative", "Gather", [data], {"axis": 1}, {"i": np.array([[-1, 0], [2, 4]], np.int64)})
    single(out, "scatternd_rows", "ScatterND", [data], {},
           {"i": np.array([[1, 2], [3, 0]], np.int64), "u": rng.standard_normal((2, 6)).astype(np.float32)})
    single(out, "layernorm_axis1", "LayerNormalization", [data], {"axis": 1, "epsilon": 1e-3},
           {"s": rng.standard_normal((5, 6)).astype(np.float32), "b": rng.standard_normal((6,)).astype(np.float32)})
    single(out, "gelu_tanh", "Gelu", [data], {"approximate": "tanh"}, opset=20)
    single(out, "gelu_erf", "Gelu", [data], {}, opset=20)
    single(out, "softmax_axis0", "Softmax", [data], {"axis": 0})
    single(out, "reducemean_axes_input", "ReduceMean", [data], {"keepdims": 0}, {"a": np.array([0, 2], np.int64)})
    single(out, "gemm_transposed_broadcast_c", "Gemm", [rng.standard_normal((5, 3)).astype(np.float32)],
           {"transA": 1, "transB": 1, "alpha": 0.5, "beta": 2.0},
           {"b": rng.standard_normal((4, 5)).astype(np.float32), "c": rng.standard_normal((1, 4)).astype(np.float32)})
    single(out, "matmul_batched_broadcast", "MatMul", [rng.standard_normal((2, 1, 3, 4)).astype(np.float32)], {},
           {"b": rng.standard_normal((3, 4, 5)).astype(np.float32)})
    single(out, "mod_int_python_sign", "Mod", [np.array([-7, 7, -7, 7, 5], np.int64)], {}, {"b": np.array([2, -2, -2, 2, 3], np.int64)},
           out_type=TensorProto.INT64)
    single(out, "lrn_size3", "LRN", [x], {"size": 3, "alpha": 0.01, "beta": 0.6, "bias": 1.5})


def main():
    out = sys.argv[1]
    models = sys.argv[2:]
    if not models:
        op_cases(out)
    for arg in models:
        name, path, shape = arg.split(":")
        model = onnx.load(path)
        x = np.random.default_rng(0).random(tuple(int(d) for d in shape.split("x")), dtype=np.float32)
        write_case(out, name, model, [x])


if __name__ == "__main__":
    main()
