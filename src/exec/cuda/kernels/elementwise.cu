// Elementwise float32 kernels: binary arithmetic with broadcasting and unary activations.
// Arithmetic is IEEE single precision (compiled with --fmad=false, so no contraction); unary
// functions are evaluated in double and rounded once, as the CPU executor does.

// Binary op codes (kernels::BinaryOp).
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2
#define OP_DIV 3
#define OP_POW 4
#define OP_MAX 5
#define OP_MIN 6
#define OP_PRELU 7

__device__ __forceinline__ float binary_op(int op, float a, float b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return (float)pow((double)a, (double)b);
    case OP_MAX: return (a != a || b != b) ? a + b : (a > b ? a : b);
    case OP_MIN: return (a != a || b != b) ? a + b : (a < b ? a : b);
    case OP_PRELU: return a < 0.0f ? a * b : a;
    default: return 0.0f;
    }
}

// y[i] = op(a[i], b[i]) for inputs of the output's shape.
extern "C" __global__ void binary_same(const float* a, const float* b, float* y, i64 n, int op) {
    GRID_STRIDE(i, n) { y[i] = binary_op(op, a[i], b[i]); }
}

// y = op(a, b) with numpy broadcasting: s holds the output dims and each input's strides.
extern "C" __global__ void binary_broadcast(const float* a, const float* b, float* y, i64 n, int op,
                                            Strides s) {
    GRID_STRIDE(i, n) {
        i64 ia, ib;
        offsets(s, i, &ia, &ib);
        y[i] = binary_op(op, a[ia], b[ib]);
    }
}

// Unary op codes (kernels::UnaryOp).
#define U_RELU 0
#define U_SIGMOID 1
#define U_TANH 2
#define U_CLIP 3
#define U_HARD_SIGMOID 4
#define U_HARD_SWISH 5
#define U_LEAKY_RELU 6
#define U_ERF 7
#define U_EXP 8
#define U_SQRT 9
#define U_NEG 10
#define U_ABS 11
#define U_GELU 12
#define U_GELU_TANH 13
#define U_LOG 14
#define U_RECIPROCAL 15
#define U_FLOOR 16
#define U_CEIL 17
#define U_IDENTITY 18
#define U_ELU 19
#define U_SOFTPLUS 20
#define U_SIN 21
#define U_COS 22
#define U_ROUND 23
#define U_SOFTSIGN 24

__device__ __forceinline__ double clamp01(double v) { return v < 0.0 ? 0.0 : (v > 1.0 ? 1.0 : v); }

__device__ double unary_op(int op, double x, double alpha, double beta) {
    switch (op) {
    case U_RELU: return x > 0.0 ? x : 0.0;
    case U_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case U_TANH: return tanh(x);
    case U_CLIP: return x < alpha ? alpha : (x > beta ? beta : x);
    case U_HARD_SIGMOID: return clamp01(alpha * x + beta);
    case U_HARD_SWISH: return x * clamp01(x / 6.0 + 0.5);
    case U_LEAKY_RELU: return x < 0.0 ? alpha * x : x;
    case U_ERF: return erf(x);
    case U_EXP: return exp(x);
    case U_SQRT: return sqrt(x);
    case U_NEG: return -x;
    case U_ABS: return fabs(x);
    case U_GELU: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    case U_GELU_TANH: return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    case U_LOG: return log(x);
    case U_RECIPROCAL: return 1.0 / x;
    case U_FLOOR: return floor(x);
    case U_CEIL: return ceil(x);
    case U_IDENTITY: return x;
    case U_ELU: return x < 0.0 ? alpha * (exp(x) - 1.0) : x;
    case U_SOFTPLUS: return x > 30.0 ? x : log1p(exp(x));
    case U_SIN: return sin(x);
    case U_COS: return cos(x);
    case U_ROUND: return rint(x);
    case U_SOFTSIGN: return x / (1.0 + fabs(x));
    default: return 0.0;
    }
}

// y[i] = f(x[i]); alpha/beta are the op's attributes (Clip: min/max; HardSigmoid: alpha/beta).
extern "C" __global__ void unary(const float* x, float* y, i64 n, int op, float alpha, float beta) {
    GRID_STRIDE(i, n) { y[i] = (float)unary_op(op, (double)x[i], (double)alpha, (double)beta); }
}

// y[n, c, ...] += bias[c] for a tensor viewed as [outer, channels, inner] (Conv's bias).
extern "C" __global__ void add_channel_bias(float* y, const float* bias, i64 n, i64 channels,
                                            i64 inner) {
    GRID_STRIDE(i, n) { y[i] += bias[(i / inner) % channels]; }
}

// BatchNormalization (inference) on [outer, channels, inner], in f32 exactly as the CPU executor:
// a = scale / sqrt(var + epsilon), b = bias - mean * a, y = x * a + b (no contraction).
extern "C" __global__ void batch_norm(const float* x, float* y, const float* scale,
                                      const float* bias, const float* mean, const float* var,
                                      i64 n, i64 channels, i64 inner, float epsilon) {
    GRID_STRIDE(i, n) {
        i64 c = (i / inner) % channels;
        float a = scale[c] / sqrtf(var[c] + epsilon);
        float b = bias[c] - mean[c] * a;
        y[i] = x[i] * a + b;
    }
}
