//! A low-dimensional projection of a model's pooled embeddings (the vector its head reads),
//! fitted once on the reference texts and stored in the profile: the principal components of
//! the reference embeddings, each scaled to unit variance there, so that drift in what the
//! encoder sees (topics, style) shows as `embedding:i` features with the same normalized
//! Wasserstein test as every other numeric feature.
//!
//! Principal components by power iteration with deflation on the covariance matrix (hidden
//! sizes of a few hundred: a covariance of 384 x 384 for MiniLM), written here because it is a
//! few lines and a linear-algebra crate would be a large dependency for one decomposition.

use serde::{Deserialize, Serialize};

/// Components kept by default.
pub const DEFAULT_COMPONENTS: usize = 4;
/// Power-iteration steps per component (the vectors converge long before on real embeddings;
/// the number is fixed so a profile is reproducible).
const ITERATIONS: usize = 200;
/// Prefix of the projected features (`embedding:0`, `embedding:1`, ...).
pub const EMBEDDING_PREFIX: &str = "embedding:";

/// The projection: `value_i = (components_i . (x - mean)) / scale_i`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Projection {
    /// Width of the embeddings it projects.
    pub dims: usize,
    /// Mean embedding of the reference texts.
    pub mean: Vec<f32>,
    /// Unit-length principal directions, largest variance first.
    pub components: Vec<Vec<f32>>,
    /// Standard deviation of the reference texts along each direction.
    pub scale: Vec<f32>,
}

impl Projection {
    /// Fits up to `k` components to `embeddings` (rows of equal width); `None` with fewer than
    /// two rows, rows of different widths, or no variance at all.
    pub fn fit(embeddings: &[Vec<f32>], k: usize) -> Option<Projection> {
        let n = embeddings.len();
        let dims = embeddings.first()?.len();
        if n < 2 || dims == 0 || embeddings.iter().any(|e| e.len() != dims) {
            return None;
        }
        let mut mean = vec![0f64; dims];
        for e in embeddings {
            for (m, &v) in mean.iter_mut().zip(e) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        // Covariance, upper triangle mirrored.
        let mut cov = vec![0f64; dims * dims];
        let mut centred = vec![0f64; dims];
        for e in embeddings {
            for ((c, &v), &m) in centred.iter_mut().zip(e).zip(&mean) {
                *c = f64::from(v) - m;
            }
            for i in 0..dims {
                let ci = centred[i];
                let row = &mut cov[i * dims..(i + 1) * dims];
                for (j, r) in row.iter_mut().enumerate().skip(i) {
                    *r += ci * centred[j];
                }
            }
        }
        for i in 0..dims {
            for j in i..dims {
                let v = cov[i * dims + j] / (n - 1) as f64;
                cov[i * dims + j] = v;
                cov[j * dims + i] = v;
            }
        }
        let mut components = Vec::new();
        let mut scale = Vec::new();
        for c in 0..k.min(dims) {
            // A fixed start that is not orthogonal to any direction in practice.
            let mut v: Vec<f64> = (0..dims)
                .map(|i| 1.0 + ((i * 7 + c * 13) % 11) as f64 / 11.0)
                .collect();
            normalize(&mut v);
            let mut eigen = 0.0;
            for _ in 0..ITERATIONS {
                let mut w = mat_vec(&cov, &v, dims);
                eigen = dot(&w, &v);
                if normalize(&mut w) == 0.0 {
                    break;
                }
                v = w;
            }
            if eigen <= 1e-12 {
                break;
            }
            // Deflate: remove this direction's variance.
            for i in 0..dims {
                for j in 0..dims {
                    cov[i * dims + j] -= eigen * v[i] * v[j];
                }
            }
            scale.push(eigen.sqrt() as f32);
            components.push(v.iter().map(|&x| x as f32).collect());
        }
        if components.is_empty() {
            return None;
        }
        Some(Projection {
            dims,
            mean: mean.iter().map(|&m| m as f32).collect(),
            components,
            scale,
        })
    }

    /// The projected, standardized coordinates of `embedding`; `None` for another width.
    pub fn project(&self, embedding: &[f32]) -> Option<Vec<f32>> {
        if embedding.len() != self.dims {
            return None;
        }
        Some(
            self.components
                .iter()
                .zip(&self.scale)
                .map(|(c, &s)| {
                    let d: f32 = c
                        .iter()
                        .zip(embedding)
                        .zip(&self.mean)
                        .map(|((&c, &x), &m)| c * (x - m))
                        .sum();
                    d / s.max(f32::MIN_POSITIVE)
                })
                .collect(),
        )
    }

    /// The feature name of component `i`.
    pub fn feature(i: usize) -> String {
        format!("{EMBEDDING_PREFIX}{i}")
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mat_vec(m: &[f64], v: &[f64], dims: usize) -> Vec<f64> {
    (0..dims)
        .map(|i| dot(&m[i * dims..(i + 1) * dims], v))
        .collect()
}

/// Scales `v` to unit length; returns its former length (0: left as is).
fn normalize(v: &mut [f64]) -> f64 {
    let len = dot(v, v).sqrt();
    if len > 0.0 {
        v.iter_mut().for_each(|x| *x /= len);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points spread mostly along (1, 1, 0) / sqrt 2, a little along z.
    fn cloud() -> Vec<Vec<f32>> {
        (0..400)
            .map(|i| {
                let t = (i as f32 / 40.0).sin() * 10.0;
                let z = ((i * 37 % 17) as f32 - 8.0) / 8.0;
                vec![t + 3.0, t - 1.0, z]
            })
            .collect()
    }

    #[test]
    fn finds_the_main_directions_and_standardizes() {
        let points = cloud();
        let p = Projection::fit(&points, 2).unwrap();
        let c0 = &p.components[0];
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (c0[0].abs() - r).abs() < 1e-3 && (c0[1].abs() - r).abs() < 1e-3,
            "{c0:?}"
        );
        assert!(c0[2].abs() < 1e-3, "{c0:?}");
        assert!(p.components[1][2].abs() > 0.999, "{:?}", p.components[1]);
        // Standardized: mean 0 and variance 1 on the reference itself.
        for i in 0..2 {
            let v: Vec<f32> = points.iter().map(|x| p.project(x).unwrap()[i]).collect();
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / (v.len() - 1) as f32;
            assert!(
                mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
                "{i}: {mean} {var}"
            );
        }
        assert_eq!(p.project(&[1.0, 2.0]), None);
    }

    #[test]
    fn degenerate_inputs_have_no_projection() {
        assert_eq!(Projection::fit(&[], 4), None);
        assert_eq!(Projection::fit(&[vec![1.0, 2.0]], 4), None);
        assert_eq!(Projection::fit(&[vec![1.0, 2.0], vec![1.0]], 4), None);
        assert_eq!(Projection::fit(&[vec![1.0, 2.0], vec![1.0, 2.0]], 4), None);
    }
}
