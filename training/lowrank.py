"""Online embedding compression by low-rank factorization (Acharya et al., AAAI 2019).

Given a trained embedding E (|V|xd), its truncated SVD E ~ U_k S_k V_k^T gives A = U_k (|V|xk)
and B = S_k V_k^T (kxd). By Eckart-Young, A @ B is the best rank-k approximation of E in
Frobenius norm, with error sqrt(sum of the discarded squared singular values).
"""

from __future__ import annotations

import math

import torch


def rank_for_reduction(vocab_size: int, dim: int, reduction: float) -> int:
    """Largest k with k(|V|+d) <= (1-p)|V|d, at least 1: k = floor((1-p)|V|d / (|V|+d))."""
    if not 0.0 <= reduction < 1.0:
        raise ValueError(f"target reduction must be in [0, 1), got {reduction}")
    if vocab_size < 1 or dim < 1:
        raise ValueError("vocabulary size and dimension must be positive")
    return max(1, math.floor((1.0 - reduction) * vocab_size * dim / (vocab_size + dim)))


def factorize(e: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A (|V|,k), B (k,d), all singular values) of the rank-k truncated SVD of E."""
    if not 1 <= k <= min(e.shape):
        raise ValueError(f"rank {k} out of range for a {tuple(e.shape)} matrix")
    u, s, vh = torch.linalg.svd(e.detach().double(), full_matrices=False)
    a = u[:, :k]  # (V, k)
    b = s[:k, None] * vh[:k]  # (k, d)
    return a.float(), b.float(), s.float()


def rank_for_energy(singular_values: torch.Tensor, energy: float) -> int:
    """Smallest k whose top-k singular values keep at least `energy` of sum(s^2)."""
    if not 0.0 < energy <= 1.0:
        raise ValueError(f"energy share must be in (0, 1], got {energy}")
    share = torch.cumsum(singular_values.double() ** 2, 0) / (singular_values.double() ** 2).sum()  # (d,)
    return min(int((share < energy - 1e-12).sum()) + 1, singular_values.numel())


def reduction_of_rank(vocab_size: int, dim: int, k: int) -> float:
    """The embedding reduction 1 - k(|V|+d)/(|V|d) that rank k gives."""
    return 1.0 - k * (vocab_size + dim) / (vocab_size * dim)
