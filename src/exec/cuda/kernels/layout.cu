// Data movement: strided gathers (Transpose, Slice, Expand, broadcast copies), Concat, im2col
// for convolution, ConvTranspose as a direct gather, and Resize (nearest / linear over the last
// two axes of NCHW).

// y[i] = x[offset + sum_d coord_d(i) * s.a[d]]: Transpose (permuted strides), Slice (offset and
// stepped strides), Expand (stride 0). s.b is unused.
extern "C" __global__ void gather_strided(const float* x, float* y, i64 n, i64 offset, Strides s) {
    GRID_STRIDE(i, n) {
        i64 ia, ib;
        offsets(s, i, &ia, &ib);
        y[i] = x[offset + ia];
    }
}

// Copies x, viewed as [outer, len, inner], into y viewed as [outer, y_len, inner] at
// axis position `at` (one Concat input).
extern "C" __global__ void concat_copy(const float* x, float* y, i64 outer, i64 len, i64 inner,
                                       i64 y_len, i64 at) {
    i64 n = outer * len * inner;
    GRID_STRIDE(i, n) {
        i64 k = i % inner;
        i64 j = (i / inner) % len;
        i64 o = i / (inner * len);
        y[(o * y_len + at + j) * inner + k] = x[i];
    }
}

// Geometry of a 2-D convolution window (also pooling's).
struct Window {
    i64 channels, height, width;     // input (one image, the channels of one group)
    i64 kernel_h, kernel_w;
    i64 stride_h, stride_w;
    i64 pad_top, pad_left;
    i64 dilation_h, dilation_w;
    i64 out_h, out_w;
};

// col[(c * kh + ky) * kw + kx, oy * out_w + ox] = x[c, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw]
// (0 outside the image): the im2col matrix [C*kh*kw, out_h*out_w] of one image and group.
extern "C" __global__ void im2col(const float* x, float* col, Window w) {
    i64 spatial = w.out_h * w.out_w;
    i64 n = w.channels * w.kernel_h * w.kernel_w * spatial;
    GRID_STRIDE(i, n) {
        i64 p = i % spatial;
        i64 row = i / spatial;
        i64 kx = row % w.kernel_w;
        i64 ky = (row / w.kernel_w) % w.kernel_h;
        i64 c = row / (w.kernel_w * w.kernel_h);
        i64 iy = (p / w.out_w) * w.stride_h - w.pad_top + ky * w.dilation_h;
        i64 ix = (p % w.out_w) * w.stride_w - w.pad_left + kx * w.dilation_w;
        bool inside = iy >= 0 && iy < w.height && ix >= 0 && ix < w.width;
        col[i] = inside ? x[(c * w.height + iy) * w.width + ix] : 0.0f;
    }
}

// Resize coordinate transforms (kernels::ResizeTransform) and nearest rounding modes.
#define T_HALF_PIXEL 0
#define T_ASYMMETRIC 1
#define T_ALIGN_CORNERS 2
#define T_PYTORCH_HALF_PIXEL 3
#define N_ROUND_PREFER_FLOOR 0
#define N_ROUND_PREFER_CEIL 1
#define N_FLOOR 2
#define N_CEIL 3

// Input coordinate of output coordinate `o` on an axis of `in_len` -> `out_len` with `scale`,
// in f32 as the CPU executor and onnxruntime compute it (ties round differently in f64).
__device__ float source_coordinate(int transform, float o, float scale, i64 in_len, i64 out_len) {
    switch (transform) {
    case T_ASYMMETRIC: return o / scale;
    case T_ALIGN_CORNERS: return out_len == 1 ? 0.0f : o * (float)(in_len - 1) / (float)(out_len - 1);
    case T_PYTORCH_HALF_PIXEL: return out_len > 1 ? (o + 0.5f) / scale - 0.5f : 0.0f;
    default: return (o + 0.5f) / scale - 0.5f;
    }
}

__device__ i64 nearest_index(int mode, double v, i64 len) {
    double r;
    switch (mode) {
    case N_ROUND_PREFER_CEIL: r = floor(v + 0.5); break;
    case N_FLOOR: r = floor(v); break;
    case N_CEIL: r = ceil(v); break;
    default: r = (v - floor(v) == 0.5) ? floor(v) : floor(v + 0.5); break;
    }
    i64 k = (i64)r;
    return k < 0 ? 0 : (k >= len ? len - 1 : k);
}

// Resize of x [planes, in_h, in_w] to y [planes, out_h, out_w]; linear = bilinear, else nearest.
extern "C" __global__ void resize2d(const float* x, float* y, i64 planes, i64 in_h, i64 in_w,
                                    i64 out_h, i64 out_w, float scale_h, float scale_w,
                                    int transform, int linear, int nearest_mode) {
    i64 n = planes * out_h * out_w;
    GRID_STRIDE(i, n) {
        i64 ox = i % out_w;
        i64 oy = (i / out_w) % out_h;
        const float* plane = x + (i / (out_w * out_h)) * in_h * in_w;
        double sy = (double)source_coordinate(transform, (float)oy, scale_h, in_h, out_h);
        double sx = (double)source_coordinate(transform, (float)ox, scale_w, in_w, out_w);
        if (!linear) {
            y[i] = plane[nearest_index(nearest_mode, sy, in_h) * in_w + nearest_index(nearest_mode, sx, in_w)];
            continue;
        }
        sy = sy < 0.0 ? 0.0 : (sy > (double)(in_h - 1) ? (double)(in_h - 1) : sy);
        sx = sx < 0.0 ? 0.0 : (sx > (double)(in_w - 1) ? (double)(in_w - 1) : sx);
        i64 y0 = (i64)floor(sy), x0 = (i64)floor(sx);
        i64 y1 = y0 + 1 < in_h ? y0 + 1 : in_h - 1;
        i64 x1 = x0 + 1 < in_w ? x0 + 1 : in_w - 1;
        double fy = sy - (double)y0, fx = sx - (double)x0;
        double top = (1.0 - fx) * plane[y0 * in_w + x0] + fx * plane[y0 * in_w + x1];
        double bottom = (1.0 - fx) * plane[y1 * in_w + x0] + fx * plane[y1 * in_w + x1];
        y[i] = (float)((1.0 - fy) * top + fy * bottom);
    }
}

// Geometry of a 2-D transposed convolution (groups, strides, pads, dilations).
struct Deconv {
    i64 batch, in_c, in_h, in_w;
    i64 out_c, out_h, out_w;
    i64 kernel_h, kernel_w;
    i64 stride_h, stride_w;
    i64 pad_top, pad_left;
    i64 dilation_h, dilation_w;
    i64 group;
};

// ConvTranspose: y[n, co, oy, ox] = bias[co] + sum over the input pixels (iy, ix) and kernel taps
// (ky, kx) with oy = iy * stride - pad + ky * dilation (same for x) of x[n, ci, iy, ix] *
// w[ci, co % out_per_group, ky, kx], ci in co's group. w is [in_c, out_c / group, kh, kw];
// bias may be null. One thread per output element (a gather: no atomics).
extern "C" __global__ void conv_transpose2d(const float* x, const float* w, const float* bias,
                                            float* y, Deconv p) {
    i64 n_out = p.batch * p.out_c * p.out_h * p.out_w;
    i64 out_per_group = p.out_c / p.group;
    i64 in_per_group = p.in_c / p.group;
    GRID_STRIDE(i, n_out) {
        i64 ox = i % p.out_w;
        i64 oy = (i / p.out_w) % p.out_h;
        i64 co = (i / (p.out_w * p.out_h)) % p.out_c;
        i64 n = i / (p.out_w * p.out_h * p.out_c);
        i64 g = co / out_per_group;
        i64 cog = co % out_per_group;
        double acc = bias ? (double)bias[co] : 0.0;
        for (i64 ky = 0; ky < p.kernel_h; ++ky) {
            i64 ty = oy + p.pad_top - ky * p.dilation_h;
            if (ty < 0 || ty % p.stride_h != 0) continue;
            i64 iy = ty / p.stride_h;
            if (iy >= p.in_h) continue;
            for (i64 kx = 0; kx < p.kernel_w; ++kx) {
                i64 tx = ox + p.pad_left - kx * p.dilation_w;
                if (tx < 0 || tx % p.stride_w != 0) continue;
                i64 ix = tx / p.stride_w;
                if (ix >= p.in_w) continue;
                for (i64 cig = 0; cig < in_per_group; ++cig) {
                    i64 ci = g * in_per_group + cig;
                    acc += (double)x[((n * p.in_c + ci) * p.in_h + iy) * p.in_w + ix] *
                           (double)w[((ci * out_per_group + cog) * p.kernel_h + ky) * p.kernel_w + kx];
                }
            }
        }
        y[i] = (float)acc;
    }
}
