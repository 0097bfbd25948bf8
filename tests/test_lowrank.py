import math

import pytest
import torch

from training.lowrank import factorize, rank_for_reduction
from training.model import FullEmbedding, LowRankEmbedding


@pytest.mark.parametrize(("v", "d", "p", "k"), [
    (14752, 50, 0.9, 4),      # SST-2 vocabulary, GloVe 50d: floor(0.1*14752*50/14802) = 4
    (50000, 300, 0.9, 29),    # floor(0.1*50000*300/50300) = 29
    (1000, 50, 0.5, 23),      # floor(0.5*1000*50/1050) = 23
    (10, 10, 0.99, 1),        # never below 1
    (100, 20, 0.0, 16),       # p=0 still factorizes: floor(2000/120)
])
def test_rank_formula(v, d, p, k):
    assert rank_for_reduction(v, d, p) == k


@pytest.mark.parametrize("p", [0.5, 0.75, 0.9, 0.95])
def test_rank_is_largest_that_meets_the_target(p):
    v, d = 14752, 50
    k = rank_for_reduction(v, d, p)
    assert k * (v + d) <= (1 - p) * v * d + 1e-6
    assert (k + 1) * (v + d) > (1 - p) * v * d


def test_unreachable_target_clamps_to_rank_one():
    # at d=50 even k=1 keeps (|V|+d)/(|V|d) = 2.007% of the table: 98% cannot be met, k stays 1
    assert rank_for_reduction(14752, 50, 0.98) == 1


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_rank_rejects_bad_reduction(p):
    with pytest.raises(ValueError):
        rank_for_reduction(100, 10, p)


def test_factors_are_the_truncated_svd_and_meet_eckart_young():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(300, 40, generator=g) @ torch.diag(torch.linspace(3, 0.1, 40))
    k = 7
    a, b, s = factorize(e, k)
    assert a.shape == (300, k) and b.shape == (k, 40)
    u, s_ref, vh = torch.linalg.svd(e.double(), full_matrices=False)
    truncated = (u[:, :k] * s_ref[:k]) @ vh[:k]
    assert torch.allclose((a @ b).double(), truncated, atol=1e-5)
    err = torch.linalg.norm(e.double() - (a @ b).double())
    assert math.isclose(float(err), float(torch.sqrt((s_ref[k:] ** 2).sum())), rel_tol=1e-5)
    assert torch.allclose(a.T @ a, torch.eye(k), atol=1e-5)  # A = U_k has orthonormal columns
    # any other rank-k matrix does worse (Eckart-Young)
    other = (u[:, 1:k + 1] * s_ref[1:k + 1]) @ vh[1:k + 1]
    assert torch.linalg.norm(e.double() - other) > err


def test_factorize_rejects_bad_rank():
    with pytest.raises(ValueError):
        factorize(torch.zeros(5, 3), 4)


def test_factors_of_a_trained_table_have_the_right_size():
    e = FullEmbedding(torch.randn(2000, 50)).table.weight
    k = rank_for_reduction(2000, 50, 0.9)
    a, b, _ = factorize(e, k)
    low = LowRankEmbedding(a, b)
    assert low.rank == k and low.vocab_size == 2000
    assert low.a.weight.shape == (2000, k) and low.b.shape == (k, 50)
    assert sum(p.numel() for p in low.parameters()) <= 0.1 * 2000 * 50
    ids = torch.tensor([[3, 7, 9]])
    assert torch.allclose(low(ids), (low.a.weight @ low.b)[ids], atol=1e-5)


def test_pooled_mean_first_equals_projecting_every_token():
    low = LowRankEmbedding(torch.randn(100, 4), torch.randn(4, 50))
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    per_token = (low(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(low.pooled_mean(ids, mask), per_token, atol=1e-5)
