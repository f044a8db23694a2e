// QuantizeLinear / DequantizeLinear, per tensor or per axis (channel c = (i / inner) % channels):
// q = saturate(round_half_to_even(x / scale[c]) + zero_point[c]); x = (q - zero_point[c]) * scale[c].
// Division and the dequantize product are single IEEE operations, as on the CPU.

template <typename Q>
__device__ void quantize_impl(const float* x, Q* y, i64 n, const float* scale, const int* zero,
                              i64 channels, i64 inner, float lo, float hi) {
    GRID_STRIDE(i, n) {
        i64 c = channels == 1 ? 0 : (i / inner) % channels;
        float r = rintf(x[i] / scale[c]) + (float)zero[c];
        r = r < lo ? lo : (r > hi ? hi : r);
        y[i] = (Q)r;
    }
}

template <typename Q>
__device__ void dequantize_impl(const Q* q, float* y, i64 n, const float* scale, const int* zero,
                                i64 channels, i64 inner) {
    GRID_STRIDE(i, n) {
        i64 c = channels == 1 ? 0 : (i / inner) % channels;
        y[i] = (float)((i64)q[i] - (i64)zero[c]) * scale[c];
    }
}

extern "C" __global__ void quantize_i8(const float* x, signed char* y, i64 n, const float* scale,
                                       const int* zero, i64 channels, i64 inner) {
    quantize_impl<signed char>(x, y, n, scale, zero, channels, inner, -128.0f, 127.0f);
}

extern "C" __global__ void quantize_u8(const float* x, unsigned char* y, i64 n, const float* scale,
                                       const int* zero, i64 channels, i64 inner) {
    quantize_impl<unsigned char>(x, y, n, scale, zero, channels, inner, 0.0f, 255.0f);
}

extern "C" __global__ void dequantize_i8(const signed char* q, float* y, i64 n, const float* scale,
                                         const int* zero, i64 channels, i64 inner) {
    dequantize_impl<signed char>(q, y, n, scale, zero, channels, inner);
}

extern "C" __global__ void dequantize_u8(const unsigned char* q, float* y, i64 n,
                                         const float* scale, const int* zero, i64 channels,
                                         i64 inner) {
    dequantize_impl<unsigned char>(q, y, n, scale, zero, channels, inner);
}
