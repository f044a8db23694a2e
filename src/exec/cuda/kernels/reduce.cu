// Row-wise kernels over a tensor viewed as [outer, len, inner]: Softmax / LogSoftmax,
// LayerNormalization (inner = 1), and Reduce{Sum,Mean,Max,Min} over the middle axis.
// Sums are accumulated in double, so the result does not depend on the launch geometry more
// than one f32 rounding.

#define R_SUM 0
#define R_MEAN 1
#define R_MAX 2
#define R_MIN 3

// y[o, k] = reduce_j x[o, j, k]; one thread per output element.
extern "C" __global__ void reduce_axis(const float* x, float* y, i64 outer, i64 len, i64 inner,
                                       int op) {
    i64 n = outer * inner;
    GRID_STRIDE(i, n) {
        const float* base = x + (i / inner) * len * inner + (i % inner);
        double acc = op == R_MAX ? -1.0 / 0.0 : (op == R_MIN ? 1.0 / 0.0 : 0.0);
        for (i64 j = 0; j < len; ++j) {
            double v = (double)base[j * inner];
            if (op == R_MAX) acc = (v > acc || v != v) ? v : acc;
            else if (op == R_MIN) acc = (v < acc || v != v) ? v : acc;
            else acc += v;
        }
        y[i] = (float)(op == R_MEAN ? acc / (double)len : acc);
    }
}

// Softmax (log = 0) or LogSoftmax (log = 1) along the middle axis; one thread per (o, k) line.
extern "C" __global__ void softmax_axis(const float* x, float* y, i64 outer, i64 len, i64 inner,
                                        int log_softmax) {
    i64 n = outer * inner;
    GRID_STRIDE(i, n) {
        i64 base = (i / inner) * len * inner + (i % inner);
        float m = -__int_as_float(0x7f800000);
        for (i64 j = 0; j < len; ++j) {
            float v = x[base + j * inner];
            m = v > m ? v : m;
        }
        double sum = 0.0;
        for (i64 j = 0; j < len; ++j) sum += exp((double)x[base + j * inner] - (double)m);
        for (i64 j = 0; j < len; ++j) {
            double d = (double)x[base + j * inner] - (double)m;
            y[base + j * inner] = (float)(log_softmax ? d - log(sum) : exp(d) / sum);
        }
    }
}

#define ROW_THREADS 256

// LayerNormalization over the last `len` elements of each of `rows` rows:
// y = (x - mean) / sqrt(var + epsilon) * scale + bias (bias may be null).
// Launch with ROW_THREADS threads and one block per row.
extern "C" __global__ void layer_norm(const float* x, float* y, const float* scale, const float* bias,
                                      i64 len, float epsilon) {
    __shared__ double sums[ROW_THREADS];
    __shared__ double squares[ROW_THREADS];
    const float* row = x + (i64)blockIdx.x * len;
    float* out = y + (i64)blockIdx.x * len;
    double s = 0.0, q = 0.0;
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
        double v = (double)row[j];
        s += v;
        q += v * v;
    }
    sums[threadIdx.x] = s;
    squares[threadIdx.x] = q;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) {
            sums[threadIdx.x] += sums[threadIdx.x + half];
            squares[threadIdx.x] += squares[threadIdx.x + half];
        }
        __syncthreads();
    }
    double mean = sums[0] / (double)len;
    double var = squares[0] / (double)len - mean * mean;
    double inv = 1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)epsilon);
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
        double v = ((double)row[j] - mean) * inv * (double)scale[j];
        out[j] = (float)(bias ? v + (double)bias[j] : v);
    }
}
