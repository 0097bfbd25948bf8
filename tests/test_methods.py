"""Compression methods: quantization arithmetic, rank choice, and each method on a small real task."""

import json

import pytest
import torch
from pydantic import ValidationError

from slimtext.data import datasets_root
from training.lowrank import factorize, rank_for_energy, reduction_of_rank
from training.methods import METHODS, Method, apply_method, evaluate, factorized
from training.model import DAN, FullEmbedding, LowRankEmbedding
from training.quantize import fake_quantize_, model_bytes, quantize_rows
from training.sizes import Shape, quantized_bytes
from training.train import FitConfig
from training.workbench import Task, Workbench


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_quantize_rows_is_symmetric_per_row_and_within_half_a_step(bits):
    torch.manual_seed(0)
    w = torch.randn(30, 11) * torch.logspace(-2, 1, 30).unsqueeze(1)  # rows of very different scales
    w[3] = 0.0
    qt = quantize_rows(w, bits)
    qmax = 2 ** (bits - 1) - 1
    assert qt.q.abs().max() <= qmax and qt.scales.shape == (30,)
    err = (qt.dequantize() - w).abs()
    assert (err <= qt.scales.unsqueeze(1) / 2 + 1e-7).all()  # round-to-nearest: at most half a step
    assert (qt.dequantize()[3] == 0).all()
    assert qt.nbytes == (30 * 11 * bits + 7) // 8 + 4 * 30
    with pytest.raises(ValueError):
        quantize_rows(w, 3)


def test_whole_model_quantization_bytes_match_the_analytic_count():
    torch.manual_seed(0)
    model = DAN(FullEmbedding(torch.randn(100, 12)), 3, hidden=(20, 10))
    stored = fake_quantize_(model, 4, "model")
    total, emb = model_bytes(model, stored)
    s = Shape(arch="dan", vocab=100, dim=12, n_classes=3, hidden=(20, 10))
    assert total == quantized_bytes(s, 4, "model")
    assert emb == (100 * 12 * 4) // 8 + 4 * 100
    low = DAN(LowRankEmbedding(torch.randn(100, 3), torch.randn(3, 12)), 3, hidden=(20, 10))
    stored = fake_quantize_(low, 8, "embedding")
    assert model_bytes(low, stored)[0] == quantized_bytes(s.model_copy(update={"rank": 3}), 8, "embedding")
    assert stored["embedding.a.weight"] == 100 * 3 + 4 * 3  # one scale per column of A


def test_rank_for_energy():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])  # squared: 16, 4, 1, 1 of 22
    assert rank_for_energy(s, 16 / 22) == 1
    assert rank_for_energy(s, 0.75) == 2
    assert rank_for_energy(s, 1.0) == 4
    with pytest.raises(ValueError):
        rank_for_energy(s, 0.0)
    assert reduction_of_rank(1000, 50, 4) == pytest.approx(1 - 4 * 1050 / 50000)


def test_method_settings_are_validated_early():
    with pytest.raises(ValidationError):
        Method(name="x", kind="online", bits=8)
    with pytest.raises(ValidationError):
        Method(name="x", kind="quant")
    with pytest.raises(ValidationError):
        Method(name="x", kind="quant", bits=8, retrain={"epochs": 3})
    with pytest.raises(ValidationError):
        Method(name="x", kind="online", retrain={"epoch": 3})  # a typo fails here, not mid-sweep
    with pytest.raises(ValidationError):
        Method(name="x", kind="quant", bits=8, energy=0.5)


@pytest.fixture(scope="module")
def task():
    return Task.load(datasets_root() / "sst2", limit_train=400)


def bench(task, tmp_path, seed=0):
    one = FitConfig(epochs=2, batch_size=64, lr=1e-3)
    retrain = FitConfig(epochs=1, batch_size=64, schedule="calr", distill_alpha=0.5, distill_temperature=2.0)
    return Workbench(task, "dan", seed, tmp_path, one, retrain, model_kwargs={"hidden": (32,)}, log=lambda *_: None)


def test_methods_on_a_small_real_task(task, tmp_path):
    b = bench(task, tmp_path / "a")
    full = apply_method(METHODS["full"], b).model
    e = full.embedding.table.weight.detach()

    noretrain = apply_method(METHODS["noretrain"], b, 0.9)
    a, bb, _ = factorize(e, noretrain.rank)
    torch.testing.assert_close(noretrain.model.embedding.a.weight, a)
    torch.testing.assert_close(noretrain.model.embedding.b, bb)
    assert noretrain.rank == 4 or reduction_of_rank(len(task.tok), 50, noretrain.rank) >= 0.9

    online = apply_method(METHODS["online"], b, 0.9).model
    assert not torch.equal(online.embedding.a.weight, a)  # re-training moved the factors

    offline = apply_method(METHODS["offline"], b, 0.9).model
    a0, b0, _ = factorize(task.initial_embedding(0), noretrain.rank)  # SVD of the GloVe rows before training
    torch.testing.assert_close(offline.embedding.a.weight, a0)  # frozen
    torch.testing.assert_close(offline.embedding.b, b0)
    assert not torch.equal(offline.mlp.net[0].weight, full.mlp.net[0].weight)

    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    r = evaluate(b, METHODS["online+int8"], 0.9)  # reuses the cached online model: no new training
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == files
    assert r["embedding_bytes_reduction"] >= 0.97 and r["rank"] == noretrain.rank
    q = evaluate(b, METHODS["int4"], None)
    assert q["embedding_bytes"] == (len(task.tok) * 50 * 4) // 8 + 4 * len(task.tok)
    assert q["reduction"] is None and 0.0 <= q["test_acc"] <= 1.0


def test_same_seed_same_numbers_and_cache_gives_the_same_model(task, tmp_path):
    first = evaluate(bench(task, tmp_path / "a"), METHODS["online"], 0.9)
    second = evaluate(bench(task, tmp_path / "b"), METHODS["online"], 0.9)  # trained again from scratch
    third = evaluate(bench(task, tmp_path / "a"), METHODS["online"], 0.9)  # loaded from the cache
    for key in ("dev_acc", "test_acc", "rank", "model_bytes"):
        assert first[key] == second[key] == third[key]


def test_energy_rank_and_extended_vocabulary(tmp_path):
    ext = Task.load(datasets_root() / "trec", limit_train=200, vocab_extra=3000)
    plain = Task.load(datasets_root() / "trec", limit_train=200)
    assert len(ext.tok) > len(plain.tok) + 2000 and "the" in ext.tok.stoi
    b = Workbench(plain, "dan", 0, tmp_path, FitConfig(epochs=1), FitConfig(epochs=1, schedule="calr"),
                  model_kwargs={"hidden": (16,)}, log=lambda *_: None)
    r = evaluate(b, METHODS["online-e80"], None)
    s = torch.linalg.svdvals(b.full().embedding.table.weight.detach().double())
    assert r["rank"] == rank_for_energy(s, 0.8) and r["reduction"] is None


@pytest.mark.parametrize("arch", ["dan", "cnn", "bilstm"])
def test_checkpoints_round_trip_as_plain_data(tmp_path, arch):
    from training.architectures import ARCHITECTURES
    from training.checkpoint import load_model, save_model

    torch.manual_seed(0)
    kwargs = {"dan": {"hidden": (16, 8)}, "cnn": {"maps": 5, "widths": (2, 3)}, "bilstm": {"hidden": 6}}[arch]
    model = ARCHITECTURES[arch].cls(LowRankEmbedding(torch.randn(40, 3), torch.randn(3, 10)), 4, **kwargs).eval()
    save_model(tmp_path / "m.pt", model, 4, kwargs, {"history": [{"epoch": 1, "dev_acc": 0.5}]})
    loaded, info = load_model(tmp_path / "m.pt")  # torch.load(weights_only=True) inside
    ids, lengths = torch.randint(2, 40, (3, 7)), torch.tensor([7, 2, 0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids, lengths), model(ids, lengths))
    assert info["history"][0]["dev_acc"] == 0.5


def test_word_dropout_override_is_for_online_methods_only():
    assert Method(name="x", kind="online", word_dropout=0.0).word_dropout == 0.0
    with pytest.raises(ValidationError):
        Method(name="x", kind="noretrain", word_dropout=0.0)


def test_one_svd_per_model_and_rank_and_each_copy_is_its_own(task, tmp_path, monkeypatch):
    """Re-training and the no-retrain score share one SVD (runs.py asked for it twice); training one copy of
    the factors leaves the next copy as the SVD made it."""
    import training.workbench as wb

    calls = []
    real = wb.factorize
    monkeypatch.setattr(wb, "factorize", lambda *a, **k: calls.append(1) or real(*a, **k))
    b = bench(task, tmp_path)
    first = factorized(b, METHODS["online"], 0.9)
    with torch.no_grad():
        first.embedding.a.weight.add_(1.0)
        first.embedding.b.add_(1.0)
    second = factorized(b, METHODS["online"], 0.9)
    assert len(calls) == 1
    assert not torch.equal(first.embedding.a.weight, second.embedding.a.weight)
    assert not torch.equal(first.embedding.b, second.embedding.b)
    factorized(b, METHODS["online"], 0.5)
    assert len(calls) == 2


def test_what_a_method_is_served_as_is_said_by_the_method():
    from training.recipe import PHRASE_METHOD
    from training.runs import RunConfig

    assert METHODS[PHRASE_METHOD].served_as == "lowrank"  # `run`'s default on phrases is served as lowrank
    served = {m.name for m in METHODS.values() if m.served_as == "lowrank"}
    assert served == {"online", "online-nowd", "online-nowd-pure", "online-nowd-pure-r3-h0.0001-l1e-05",
                      "teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-a0.5-t2"}
    from training.recipe import PHRASE_TEACHER_METHOD

    assert METHODS[PHRASE_TEACHER_METHOD].served_as == "lowrank"  # and with the phrases' own teacher
    assert RunConfig(method="online-nowd-pure").suffix == "lowrank"
    assert RunConfig(method="online-nowd-pure+int8").suffix == "online-nowd-pure-int8"


def test_variants_are_data_one_entry_each(tmp_path, monkeypatch):
    """A named method is one line in training/variants/*.json: a new file there is read in file-name order, its
    groups feed the reports; a bad or repeated entry fails naming its file."""
    import training.methods as tm

    monkeypatch.setattr(tm, "METHODS", dict(tm.METHODS))
    (tmp_path / "90-mine.json").write_text(json.dumps({"about": "a test", "methods": [
        {"name": "online-mine", "kind": "online", "retrain": {"epochs": 2}, "groups": ["recipes"]}]}))
    tm.load_variants(tmp_path)
    assert tm.METHODS["online-mine"].retrain == {"epochs": 2} and tm.in_group("recipes")[-1] == "online-mine"
    (tmp_path / "91-again.json").write_text(json.dumps({"methods": [{"name": "online-mine", "kind": "online"}]}))
    with pytest.raises(ValueError, match="90-mine.json: method 'online-mine' is registered twice"):
        tm.load_variants(tmp_path)
    (tmp_path / "91-again.json").write_text(json.dumps({"methods": [{"name": "x", "kind": "onlin"}]}))
    (tmp_path / "90-mine.json").unlink()
    with pytest.raises(ValueError, match="91-again.json: .*unknown kind 'onlin'"):
        tm.load_variants(tmp_path)


def test_each_int8_copy_has_its_base_settings():
    """The `<name>+int8` entries repeat their base's settings (the data has no generator to keep them in step)."""
    copies = [m for m in METHODS.values() if m.name.endswith("+int8") and m.name[:-5] in METHODS]
    assert len(copies) >= 40
    for m in copies:
        base = METHODS[m.name[:-5]]
        assert (m.bits, m.train, m.retrain, m.word_dropout) == (8, base.train, base.retrain, base.word_dropout), m.name
        assert m.kind == {"online": "online_quant", "full": "quant"}[base.kind], m.name


def test_the_workbench_takes_plain_inputs():
    """training/workbench.py knows no compression method: fit configs, a rank and a word dropout go in."""
    import ast
    import inspect

    import training.workbench as wb

    tree = ast.parse(inspect.getsource(wb))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "training.methods" not in imported and "Method" not in inspect.getsource(wb)
    assert list(inspect.signature(wb.Workbench.online).parameters) == ["self", "rank", "retrain", "word_dropout",
                                                                       "train"]
