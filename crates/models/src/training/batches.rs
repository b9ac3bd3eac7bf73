//! The mini-batch epoch of the models trained on token-id sequences (lstm, bert): seeded,
//! length-bucketed batches (similar lengths, little padding), each handed to the model's step,
//! with the epoch's mean loss and token count summed as they go.

use taxon_core::model::ModelError;

use super::{EpochStats, TrainObserver};
use crate::rng::SplitMix64;

/// The generator of epoch `epoch` (1-based) of a run seeded with `seed`: shuffling and dropout
/// depend only on (seed, epoch), so a resumed run needs no generator state.
pub fn epoch_rng(seed: u64, epoch: usize) -> SplitMix64 {
    SplitMix64::new(seed.wrapping_add((epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F)))
}

/// One epoch's mini-batches (indices into `seqs`): shuffle, cut into pools of 32 batches, sort
/// each pool by length and cut it into batches (so a batch holds texts of similar length and
/// little padding), then shuffle the batch order.
pub fn bucketed_batches(
    seqs: &[Vec<u32>],
    batch_size: usize,
    rng: &mut SplitMix64,
) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    rng.shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for pool in order.chunks_mut(batch_size * 32) {
        pool.sort_by_key(|&i| seqs[i].len());
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// What one optimizer step on a batch measured.
pub struct StepLoss {
    /// Mean loss over the batch's examples.
    pub loss: f32,
    /// Tokens in the batch (padding excluded).
    pub tokens: f32,
}

/// Runs epoch `epoch` over `seqs` in the batches of [`bucketed_batches`]: `step` gets each
/// batch's indices and the epoch's generator (for dropout) and returns its loss. The stats'
/// `learning_rate` is left at 0 for the caller.
pub fn minibatch_epoch(
    seqs: &[Vec<u32>],
    batch_size: usize,
    seed: u64,
    epoch: usize,
    observer: &dyn TrainObserver,
    mut step: impl FnMut(&[usize], &mut SplitMix64) -> Result<StepLoss, ModelError>,
) -> Result<EpochStats, ModelError> {
    let mut rng = epoch_rng(seed, epoch);
    let (mut loss_sum, mut tokens) = (0.0f64, 0.0f64);
    for batch in bucketed_batches(seqs, batch_size, &mut rng) {
        let s = step(&batch, &mut rng)?;
        loss_sum += f64::from(s.loss) * batch.len() as f64;
        tokens += f64::from(s.tokens);
        observer.on_docs(batch.len() as u64, s.loss);
    }
    Ok(EpochStats {
        train_loss: loss_sum / seqs.len() as f64,
        learning_rate: 0.0,
        tokens: tokens as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_example_once_with_similar_lengths() {
        let seqs: Vec<Vec<u32>> = (0..100).map(|i| vec![1; (i * 7) % 50]).collect();
        let batches = bucketed_batches(&seqs, 8, &mut SplitMix64::new(1));
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= 8));
        // Sorted within the pool: each batch's lengths are non-decreasing.
        for b in &batches {
            assert!(b.windows(2).all(|w| seqs[w[0]].len() <= seqs[w[1]].len()));
        }
    }

    #[test]
    fn an_epoch_sums_loss_per_example_and_depends_on_seed_and_epoch_only() {
        let seqs: Vec<Vec<u32>> = (0..10).map(|i| vec![1; i + 1]).collect();
        let run = |seed, epoch| {
            let mut seen = Vec::new();
            let stats = minibatch_epoch(&seqs, 4, seed, epoch, &(), |b, _| {
                seen.push(b.to_vec());
                Ok(StepLoss {
                    loss: b.len() as f32,
                    tokens: b.iter().map(|&i| seqs[i].len()).sum::<usize>() as f32,
                })
            })
            .unwrap();
            (stats, seen)
        };
        let (stats, order) = run(7, 1);
        // Batches of 4, 4, 2: loss (4*4 + 4*4 + 2*2) / 10.
        assert!(
            (stats.train_loss - 3.6).abs() < 1e-12,
            "{}",
            stats.train_loss
        );
        assert_eq!(stats.tokens, 55);
        assert_eq!(run(7, 1).1, order);
        assert_ne!(run(7, 2).1, order);
    }
}
