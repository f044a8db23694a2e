//! The calib.json encoding of bin counts: runs of consecutive non-empty bins.
//!
//! Owns turning a histogram's counts into `[first bin, [counts…]]` runs and back, checking that
//! every run fits the histogram. Activations leave most bins of a histogram's tail empty, so
//! the runs are much shorter than the bins. It does not know what the bins mean (the fine grid
//! and the 2048-bin view each wrap it in their own stored form).

use super::error::CalibError;

/// Runs of consecutive non-empty bins, each as `(first bin, counts)`.
pub(super) type Runs = Vec<(usize, Vec<u64>)>;

/// The runs of non-empty bins of `bins`, in bin order.
pub(super) fn encode(bins: &[u64]) -> Runs {
    let mut runs: Runs = Vec::new();
    for (index, &count) in bins.iter().enumerate() {
        if count == 0 {
            continue;
        }
        match runs.last_mut() {
            Some((start, counts)) if *start + counts.len() == index => counts.push(count),
            _ => runs.push((index, vec![count])),
        }
    }
    runs
}

/// The `bin_count` counts that `runs` describe (bins outside every run are empty); fails when a
/// run reaches past the last bin.
pub(super) fn decode(runs: &[(usize, Vec<u64>)], bin_count: usize) -> Result<Vec<u64>, CalibError> {
    let mut bins = vec![0u64; bin_count];
    for (start, counts) in runs {
        let target = start
            .checked_add(counts.len())
            .and_then(|end| bins.get_mut(*start..end))
            .ok_or(CalibError::RunOutOfRange {
                start: *start,
                len: counts.len(),
                bins: bin_count,
            })?;
        target.copy_from_slice(counts);
    }
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_and_skip_empty_bins() {
        let bins = [0, 3, 4, 0, 0, 1, 0];
        let runs = encode(&bins);
        assert_eq!(runs, vec![(1, vec![3, 4]), (5, vec![1])]);
        assert_eq!(decode(&runs, bins.len()).unwrap(), bins);
    }

    #[test]
    fn run_past_the_last_bin_is_rejected() {
        let error = decode(&[(6, vec![1, 2])], 7).unwrap_err();
        assert!(error.to_string().contains("bin 6"), "{error}");
        assert!(decode(&[(usize::MAX, vec![1])], 7).is_err());
    }
}
