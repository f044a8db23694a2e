// 2-D pooling over [planes, height, width] (planes = N * C): max and average windows, and the
// global pools (one block per plane, a shared-memory tree reduction).

struct Pool {
    i64 planes, height, width;
    i64 kernel_h, kernel_w;
    i64 stride_h, stride_w;
    i64 pad_top, pad_left, pad_bottom, pad_right;
    i64 dilation_h, dilation_w;
    i64 out_h, out_w;
    int count_include_pad;
};

// MaxPool: the max over the window's in-image elements (padding never wins).
extern "C" __global__ void max_pool2d(const float* x, float* y, Pool p) {
    i64 n = p.planes * p.out_h * p.out_w;
    GRID_STRIDE(i, n) {
        i64 ox = i % p.out_w;
        i64 oy = (i / p.out_w) % p.out_h;
        const float* plane = x + (i / (p.out_w * p.out_h)) * p.height * p.width;
        float best = -__int_as_float(0x7f800000);
        for (i64 ky = 0; ky < p.kernel_h; ++ky) {
            i64 iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            if (iy < 0 || iy >= p.height) continue;
            for (i64 kx = 0; kx < p.kernel_w; ++kx) {
                i64 ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
                if (ix < 0 || ix >= p.width) continue;
                float v = plane[iy * p.width + ix];
                best = (v > best || v != v) ? v : best;
            }
        }
        y[i] = best;
    }
}

// AveragePool: the window's sum over in-image elements divided by their count, or (with
// count_include_pad) by the window's size clipped to the padded image.
extern "C" __global__ void avg_pool2d(const float* x, float* y, Pool p) {
    i64 n = p.planes * p.out_h * p.out_w;
    GRID_STRIDE(i, n) {
        i64 ox = i % p.out_w;
        i64 oy = (i / p.out_w) % p.out_h;
        const float* plane = x + (i / (p.out_w * p.out_h)) * p.height * p.width;
        double sum = 0.0;
        i64 inside = 0, padded = 0;
        for (i64 ky = 0; ky < p.kernel_h; ++ky) {
            i64 iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
            if (iy >= p.height + p.pad_bottom) continue;
            for (i64 kx = 0; kx < p.kernel_w; ++kx) {
                i64 ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
                if (ix >= p.width + p.pad_right) continue;
                ++padded;
                if (iy < 0 || iy >= p.height || ix < 0 || ix >= p.width) continue;
                sum += (double)plane[iy * p.width + ix];
                ++inside;
            }
        }
        i64 count = p.count_include_pad ? padded : inside;
        y[i] = count > 0 ? (float)(sum / (double)count) : 0.0f;
    }
}

#define POOL_THREADS 256

// GlobalAveragePool (is_max = 0) or GlobalMaxPool (is_max = 1): y[plane] over `size` elements.
// Launch with POOL_THREADS threads and one block per plane.
extern "C" __global__ void global_pool(const float* x, float* y, i64 size, int is_max) {
    __shared__ double partial[POOL_THREADS];
    const float* plane = x + (i64)blockIdx.x * size;
    double acc = is_max ? -1.0 / 0.0 : 0.0;
    for (i64 j = threadIdx.x; j < size; j += blockDim.x) {
        double v = (double)plane[j];
        acc = is_max ? (v > acc || v != v ? v : acc) : acc + v;
    }
    partial[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            double o = partial[threadIdx.x + half];
            double s = partial[threadIdx.x];
            partial[threadIdx.x] = is_max ? (o > s || o != o ? o : s) : s + o;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        y[blockIdx.x] = (float)(is_max ? partial[0] : partial[0] / (double)size);
    }
}
