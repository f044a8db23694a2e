// Data movement: strided gathers (Transpose, Slice, Expand, broadcast copies), Concat, im2col
// for convolution, and Resize (nearest / linear over the last two axes of NCHW).

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

// Input coordinate of output coordinate `o` on an axis of `in_len` -> `out_len` with `scale`.
__device__ double source_coordinate(int transform, double o, double scale, i64 in_len, i64 out_len) {
    switch (transform) {
    case T_ASYMMETRIC: return o / scale;
    case T_ALIGN_CORNERS: return out_len == 1 ? 0.0 : o * (double)(in_len - 1) / (double)(out_len - 1);
    case T_PYTORCH_HALF_PIXEL: return out_len > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
    default: return (o + 0.5) / scale - 0.5;
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
                                    i64 out_h, i64 out_w, double scale_h, double scale_w,
                                    int transform, int linear, int nearest_mode) {
    i64 n = planes * out_h * out_w;
    GRID_STRIDE(i, n) {
        i64 ox = i % out_w;
        i64 oy = (i / out_w) % out_h;
        const float* plane = x + (i / (out_w * out_h)) * in_h * in_w;
        double sy = source_coordinate(transform, (double)oy, scale_h, in_h, out_h);
        double sx = source_coordinate(transform, (double)ox, scale_w, in_w, out_w);
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
