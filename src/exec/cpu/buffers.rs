//! Recycled float32 storage: large intermediates that die during a run are kept and handed to
//! later conv outputs of a fitting size instead of going back to the allocator.
//!
//! Owns: [`SpareBuffers`]. Why: glibc serves allocations above its mmap threshold (at most
//! 32 MiB) with fresh mappings and unmaps them on free, so without reuse every large conv output
//! (100 MB at batch 8 on a 640×640 detector) costs a page fault per 4 KiB.
//! Does not own: when values die (see `backend`).

use crate::graph::Tensor;

/// Tensors smaller than this many floats (1 MiB) are left to the allocator.
const MIN_FLOATS: usize = 1 << 18;

/// At most this many buffers are kept (the oldest is dropped first).
const MAX_BUFFERS: usize = 4;

/// At most this many bytes are kept.
const MAX_BYTES: usize = 256 << 20;

/// Storage of dead float32 intermediates, oldest first.
#[derive(Debug, Default)]
pub(crate) struct SpareBuffers {
    buffers: Vec<Vec<f32>>,
}

impl SpareBuffers {
    fn bytes(&self) -> usize {
        self.buffers
            .iter()
            .map(|b| b.capacity() * size_of::<f32>())
            .sum()
    }

    /// Keeps the storage of `t` when it is a large float32 tensor that owns its whole buffer;
    /// anything else is simply dropped.
    pub(crate) fn keep(&mut self, t: Tensor) {
        let Tensor::F32(a) = t else {
            return;
        };
        if a.len() < MIN_FLOATS || !a.is_standard_layout() {
            return;
        }
        let (buffer, offset) = a.into_raw_vec_and_offset();
        if offset.is_some_and(|o| o != 0) || buffer.capacity() * size_of::<f32>() > MAX_BYTES {
            return;
        }
        self.buffers.push(buffer);
        while self.buffers.len() > MAX_BUFFERS || self.bytes() > MAX_BYTES {
            self.buffers.remove(0);
        }
    }

    /// A zeroed buffer of `len` floats: a kept one whose capacity fits (at most a quarter
    /// larger), else a fresh allocation.
    pub(crate) fn take(&mut self, len: usize) -> Vec<f32> {
        let fits = |b: &Vec<f32>| b.capacity() >= len && b.capacity() - len <= len / 4;
        match self.buffers.iter().position(fits) {
            Some(i) => {
                let mut buffer = self.buffers.remove(i);
                buffer.clear();
                buffer.resize(len, 0.0);
                buffer
            }
            None => vec![0.0; len],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    #[test]
    fn large_buffers_are_reused_zeroed_and_bounded() {
        let mut spare = SpareBuffers::default();
        let big = ArrayD::from_elem(IxDyn(&[MIN_FLOATS]), 3.0f32);
        let ptr = big.as_ptr();
        spare.keep(Tensor::F32(big));
        // Too small, or not float32: dropped.
        spare.keep(Tensor::F32(ArrayD::zeros(IxDyn(&[MIN_FLOATS - 1]))));
        spare.keep(Tensor::from_i64s(vec![1; MIN_FLOATS]));
        assert_eq!(spare.buffers.len(), 1);
        // A request far smaller than the kept buffer gets a fresh one.
        let fresh = spare.take(MIN_FLOATS / 2);
        assert_ne!(fresh.as_ptr(), ptr);
        let reused = spare.take(MIN_FLOATS - 10);
        assert_eq!(reused.as_ptr(), ptr, "the kept storage is handed out");
        assert!(reused.len() == MIN_FLOATS - 10 && reused.iter().all(|&v| v == 0.0));
        assert!(spare.buffers.is_empty());
        for _ in 0..MAX_BUFFERS + 2 {
            spare.keep(Tensor::F32(ArrayD::zeros(IxDyn(&[MIN_FLOATS]))));
        }
        assert_eq!(spare.buffers.len(), MAX_BUFFERS);
        assert!(spare.bytes() <= MAX_BYTES);
    }
}
