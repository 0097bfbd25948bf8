"""Energy-based rank against the reduction formula (research/energy.py)."""

import torch

from research.energy import energy_row, main
from training.checkpoint import save_model
from training.lowrank import rank_for_reduction
from training.model import DAN, FullEmbedding


def test_energy_row_of_an_exact_low_rank_table():
    torch.manual_seed(0)
    scales = torch.tensor([4.0, 2.0, 1.0])  # energy shares 16/21, 4/21, 1/21
    u, _ = torch.linalg.qr(torch.randn(400, 3))
    v, _ = torch.linalg.qr(torch.randn(20, 3))
    table = u @ torch.diag(scales) @ v.T  # (400, 20), rank 3
    row = energy_row(table, 0.9, energies=(0.5, 0.8, 0.99))
    assert row["rank"] == rank_for_reduction(400, 20, 0.9) == 1
    assert abs(row["energy_at_rank"] - 16 / 21) < 1e-6  # the table is float32
    assert (row["k@0.5"], row["k@0.8"], row["k@0.99"]) == (1, 2, 3)
    assert abs(row["reduction@0.99"] - (1 - 3 * 420 / (400 * 20))) < 1e-12


def test_cli_reads_a_sweeps_cached_full_models(tmp_path):
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = DAN(FullEmbedding(torch.randn(500, 30)), 2, hidden=(8,))
        save_model(tmp_path / f"sst2-train-dan-s{seed}" / "cache" / "full.pt", model, 2, {"hidden": (8,)})
    out = tmp_path / "energy.md"
    assert main(["--sweep", str(tmp_path), "--out", str(out)]) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| sst2 | dan |"))
    k = rank_for_reduction(500, 30, 0.9)
    assert f"| 2 | 500 × 30 | {k} |" in row
