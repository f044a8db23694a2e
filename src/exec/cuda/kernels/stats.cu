// Calibration statistics on the device, bit-identical to the CPU collectors.
//
// range_stats: finite |x| max and min, finite min and max of x, and the finite / NaN / ±Inf
// counts, merged across blocks with atomics on order-preserving integer keys (max and min are
// exact, so the merge order does not matter).
//
// fine_histogram: bins finite |x| into FINE_BINS bins of width 2^e as floor(|x| * 2^-e): one
// IEEE f32 multiplication by an exact power of two (--fmad=false, --ftz=false), the same
// operation as the CPU's, so every value lands in the same bin. Each block counts into a
// shared-memory u32 histogram (FINE_BINS * 4 bytes = 64 KiB of dynamic shared memory: the
// launch sets CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES), then adds its non-zero counts
// into the u64 device histogram.

#define FINE_BINS 16384
#define STATS_THREADS 256

// Order-preserving key of a float: key(a) < key(b) iff a < b (for non-NaN a, b).
__device__ __forceinline__ unsigned int order_key(float v) {
    unsigned int b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// keys[0] = max |x| bits, keys[1] = min |x| bits (|x| >= 0 orders as its bits), keys[2] =
// order_key(min x), keys[3] = order_key(max x), all over finite values; counts[0..3] = finite,
// NaN, ±Inf. The caller initializes keys to {0, bits(FLT_MAX), order_key(FLT_MAX),
// order_key(-FLT_MAX)} and counts to 0.
extern "C" __global__ void range_stats(const float* x, i64 n, unsigned int* keys, u64* counts) {
    __shared__ unsigned int block_keys[4];
    __shared__ u64 block_counts[3];
    if (threadIdx.x == 0) {
        block_keys[0] = 0u;
        block_keys[1] = 0x7f7fffffu;
        block_keys[2] = order_key(3.402823466e38f);
        block_keys[3] = order_key(-3.402823466e38f);
        block_counts[0] = block_counts[1] = block_counts[2] = 0ull;
    }
    __syncthreads();
    unsigned int abs_max = 0u, abs_min = 0x7f7fffffu;
    unsigned int lo = order_key(3.402823466e38f), hi = order_key(-3.402823466e38f);
    u64 finite = 0, nan = 0, inf = 0;
    GRID_STRIDE(i, n) {
        float v = x[i];
        float m = fabsf(v);
        if (m <= 3.402823466e38f) {
            unsigned int bits = __float_as_uint(m);
            abs_max = bits > abs_max ? bits : abs_max;
            abs_min = bits < abs_min ? bits : abs_min;
            unsigned int k = order_key(v);
            lo = k < lo ? k : lo;
            hi = k > hi ? k : hi;
            ++finite;
        } else if (m != m) {
            ++nan;
        } else {
            ++inf;
        }
    }
    atomicMax(&block_keys[0], abs_max);
    atomicMin(&block_keys[1], abs_min);
    atomicMin(&block_keys[2], lo);
    atomicMax(&block_keys[3], hi);
    if (finite) atomicAdd(&block_counts[0], finite);
    if (nan) atomicAdd(&block_counts[1], nan);
    if (inf) atomicAdd(&block_counts[2], inf);
    __syncthreads();
    if (threadIdx.x == 0) {
        atomicMax(&keys[0], block_keys[0]);
        atomicMin(&keys[1], block_keys[1]);
        atomicMin(&keys[2], block_keys[2]);
        atomicMax(&keys[3], block_keys[3]);
        atomicAdd(&counts[0], block_counts[0]);
        atomicAdd(&counts[1], block_counts[1]);
        atomicAdd(&counts[2], block_counts[2]);
    }
}

// bins[floor(|x| * inv_width)] += 1 for finite x, where inv_width = 2^-e is exact and the host
// chose e so that every finite |x| of this batch maps below FINE_BINS (the clamp never acts;
// it only keeps a wrong launch in bounds). Dynamic shared memory: FINE_BINS * 4 bytes.
extern "C" __global__ void fine_histogram(const float* x, i64 n, float inv_width, u64* bins) {
    extern __shared__ unsigned int local[];
    for (int b = threadIdx.x; b < FINE_BINS; b += blockDim.x) local[b] = 0u;
    __syncthreads();
    GRID_STRIDE(i, n) {
        float m = fabsf(x[i]);
        if (m <= 3.402823466e38f) {
            unsigned int bin = (unsigned int)__fmul_rn(m, inv_width);
            atomicAdd(&local[bin < FINE_BINS ? bin : FINE_BINS - 1], 1u);
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < FINE_BINS; b += blockDim.x) {
        unsigned int c = local[b];
        if (c) atomicAdd(&bins[b], (u64)c);
    }
}
