// Shared by every trtq kernel source (prepended by kernels.rs; NVRTC has no include path here).
// Indices are 64-bit; every kernel is a grid-stride loop, so any grid size is correct.
typedef long long i64;
typedef unsigned long long u64;

#define MAX_RANK 8

#define GRID_STRIDE(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// An output shape and, per output axis, the element stride of up to two inputs (0 = broadcast).
struct Strides {
    int rank;
    i64 dims[MAX_RANK];
    i64 a[MAX_RANK];
    i64 b[MAX_RANK];
};

// Offsets of output element `i` in inputs a and b.
__device__ __forceinline__ void offsets(const Strides& s, i64 i, i64* ia, i64* ib) {
    i64 oa = 0, ob = 0;
    for (int d = s.rank - 1; d >= 0; --d) {
        i64 c = i % s.dims[d];
        i /= s.dims[d];
        oa += c * s.a[d];
        ob += c * s.b[d];
    }
    *ia = oa;
    *ib = ob;
}
