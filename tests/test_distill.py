"""Distillation from a cached teacher (training/distill.py): the loss against a hand computation, alpha = 0
against plain cross-entropy training bit for bit, and a missing or stale teacher cache refused.
Offline and fast: a tiny dataset and a fake teacher cache written here, random embeddings (no vectors)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from training.distill import check_distill, distill_loss, teacher_targets
from training.methods import METHODS, Method, apply_method, evaluate
from training.spacy_vectors import sha256_of
from training.teacher_logits import write_cache
from training.train import FitConfig, fit, seed_everything
from training.workbench import Task, Workbench

WORDS = {"pos": ["good", "great", "fine", "lovely", "superb"], "neg": ["bad", "awful", "poor", "dull", "worse"]}


def _write_split(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = ["text\tlabel"]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        words = list(rng.choice(WORDS[label], 3)) + list(rng.choice(["the", "film", "was", "a"], 2))
        lines.append(f"{' '.join(words)}\t{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    for split, n, seed in (("train", 48, 0), ("dev", 16, 1), ("test", 16, 2)):
        _write_split(folder / f"{split}.tsv", n, seed)
    return folder


def _fake_cache(folder: Path, cache_dir: Path, labels: list[str] = ["neg", "pos"]) -> np.ndarray:  # noqa: B006
    """A teacher cache in training.teacher_logits's format for `folder`'s train split: confident, right logits."""
    path = folder / "train.tsv"
    gold = [line.split("\t")[1] for line in path.read_text().splitlines()[1:]]
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 0.5, size=(len(gold), len(labels))).astype(np.float32)
    for i, g in enumerate(gold):
        logits[i, labels.index(g)] += 3.0
    splits = {"train": (f"{folder.name}/train.tsv", sha256_of(path), logits)}
    write_cache(cache_dir / f"{folder.name}.npz", labels, splits, {"dataset": folder.name, "teacher": "fake"})
    return logits


def _bench(folder: Path, tmp_path: Path, cache_dir: Path, train_cfg: FitConfig | None = None, name: str = "b"):
    task = Task.load(folder, glove=False)
    cfg = train_cfg or FitConfig(epochs=2, batch_size=8, lr=1e-2)
    retrain = FitConfig(epochs=2, batch_size=8, schedule="calr", lr_low=1e-4, lr_high=3e-3)
    return Workbench(task, "dan", 0, tmp_path / name, cfg, retrain, model_kwargs={"hidden": (8,)},
                     log=lambda *_: None, teacher_dir=cache_dir)


def test_loss_equals_a_hand_computation():
    student = [[1.0, -0.5, 0.2], [0.3, 0.3, -1.0]]
    teacher = [[2.0, 0.0, -1.0], [-0.5, 1.5, 0.5]]
    labels = [0, 2]
    alpha, t = 0.7, 2.0

    def softmax(z):
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    kl = ce = 0.0
    for s, te, y in zip(student, teacher, labels, strict=True):
        p, q = softmax([v / t for v in te]), softmax([v / t for v in s])
        kl += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q, strict=True))
        ce += -math.log(softmax(s)[y])
    expected = alpha * t * t * kl / 2 + (1 - alpha) * ce / 2
    got = distill_loss(torch.tensor(student, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64),
                       torch.tensor(labels), alpha, t)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_alpha_zero_is_cross_entropy_and_alpha_one_ignores_labels():
    s, te, y = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    assert torch.equal(distill_loss(s, te, y, 0.0, 4.0), F.cross_entropy(s, y))
    assert torch.equal(distill_loss(s, te, y, 1.0, 2.0), distill_loss(s, te, 2 - y, 1.0, 2.0))


@pytest.mark.parametrize("alpha, t", [(-0.1, 2.0), (1.5, 2.0), (0.5, 0.0), (0.5, -1.0)])
def test_bad_weight_or_temperature_refused_early(alpha, t):
    with pytest.raises(ValueError, match="alpha|temperature"):
        check_distill(alpha, t)
    with pytest.raises(ValidationError):
        FitConfig(distill_alpha=alpha, distill_temperature=t)
    with pytest.raises(ValidationError):  # a method is checked when it is declared, not mid-sweep
        Method(name="x", kind="online", retrain={"distill_alpha": alpha, "distill_temperature": t,
                                                   "distill_from": "teacher"})


def test_first_training_cannot_distill_from_the_full_model():
    with pytest.raises(ValidationError, match="no full model to distill from"):
        Method(name="x", kind="full", train={"distill_alpha": 0.5})
    with pytest.raises(ValidationError, match="offline"):
        Method(name="x", kind="offline", train={"distill_alpha": 0.5, "distill_from": "teacher"})


def test_teacher_methods_registered():
    m = METHODS["teacher-online-nowd"]
    assert m.uses_teacher and m.train["distill_from"] == m.retrain["distill_from"] == "teacher"
    assert METHODS["teacher-full-a0.5-t4"].train == {"distill_alpha": 0.5, "distill_temperature": 4.0,
                                                      "distill_from": "teacher"}
    assert not METHODS["teacher-retrain-online-nowd"].train and not METHODS["online-nowd-pure"].uses_teacher


def test_targets_aligned_to_the_task_labels(tiny, tmp_path):
    logits = _fake_cache(tiny, tmp_path / "cache", labels=["pos", "neg"])  # the task's order is neg, pos
    got = teacher_targets(tiny, "train", ["neg", "pos"], 48, tmp_path / "cache")
    assert torch.equal(got, torch.from_numpy(logits.astype(np.float16).astype(np.float32)[:, [1, 0]]))
    assert torch.equal(teacher_targets(tiny, "train", ["neg", "pos"], 20, tmp_path / "cache"), got[:20])  # limit_train
    with pytest.raises(ValueError, match="not the task's labels"):
        teacher_targets(tiny, "train", ["neg", "neutral", "pos"], 48, tmp_path / "cache")


def test_alpha_zero_trains_bit_for_bit_like_plain_cross_entropy(tiny, tmp_path):
    _fake_cache(tiny, tmp_path / "cache")
    bench = _bench(tiny, tmp_path, tmp_path / "cache")
    plain = bench.full()
    zero = bench.full(bench.train_cfg.model_copy(update={"distill_alpha": 0.0, "distill_from": "teacher"}))
    assert plain is not zero
    for (name, a), (_, b) in zip(plain.state_dict().items(), zero.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    # the teacher is really used when alpha > 0, in the first training and in the re-training
    kd = bench.full(METHODS["teacher-full-a0.9-t2"].first_training(bench.train_cfg))
    assert any(not torch.equal(a, b) for a, b in zip(plain.state_dict().values(), kd.state_dict().values(),
                                                      strict=True))
    r = evaluate(bench, METHODS["teacher-online-nowd-a0.9-t2"], 0.5)
    assert r["method"] == "teacher-online-nowd-a0.9-t2" and r["rank"] is not None and 0 <= r["dev_acc"] <= 1
    cached = sorted(p.name for p in (tmp_path / "b").glob("*.pt"))  # plain full, 2 teacher fulls, 1 online from one
    assert len(cached) == 4 and "full.pt" in cached
    assert sum(n.startswith("online-") and "-full-" in n for n in cached) == 1


def test_fit_with_alpha_zero_and_teacher_logits_equals_plain(tiny, tmp_path):
    task = Task.load(tiny, glove=False)
    bench = _bench(tiny, tmp_path, tmp_path / "cache")
    soft = torch.randn(len(task.train), 2)
    cfg = FitConfig(epochs=2, batch_size=8, lr=1e-2)
    a, _ = fit(bench.build(_embedding(task)), task.train, task.dev, cfg, 0, log=lambda *_: None)
    b, _ = fit(bench.build(_embedding(task)), task.train, task.dev,
               cfg.model_copy(update={"distill_from": "teacher"}), 0, teacher_logits=soft, log=lambda *_: None)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match="cached logits"):
        fit(bench.build(_embedding(task)), task.train, task.dev,
            cfg.model_copy(update={"distill_from": "teacher", "distill_alpha": 0.5}), 0)
    with pytest.raises(ValueError, match="teacher rows"):
        fit(bench.build(_embedding(task)), task.train, task.dev,
            cfg.model_copy(update={"distill_from": "teacher", "distill_alpha": 0.5}), 0, teacher_logits=soft[:5])


def _embedding(task: Task):
    from training.model import FullEmbedding

    seed_everything(0)  # the body's initial weights too, as Workbench.full does
    return FullEmbedding(task.initial_embedding(0, dim=8))


def test_missing_cache_refused_before_training(tiny, tmp_path):
    bench = _bench(tiny, tmp_path, tmp_path / "empty")
    with pytest.raises(ValueError, match="no teacher cache for tiny"):
        apply_method(METHODS["teacher-online-nowd"], bench, 0.5)
    assert not list((tmp_path / "b").glob("*.pt"))  # nothing was trained


def test_stale_cache_refused(tiny, tmp_path):
    _fake_cache(tiny, tmp_path / "cache")
    with open(tiny / "train.tsv", "a", encoding="utf-8") as f:
        f.write("good great film\tpos\n")  # the split changed after the teacher ran
    bench = _bench(tiny, tmp_path, tmp_path / "cache")
    with pytest.raises(ValueError, match="stale teacher cache"):
        apply_method(METHODS["teacher-retrain-online-nowd"], bench, 0.5)
    assert not list((tmp_path / "b").glob("*.pt"))


def test_arch_setting_alpha_one_is_registered_and_reported_after_the_dans_choice():
    """bench.distill_pilot run --arch-setting 1 2: the CNN / BiLSTM's teacher methods at alpha = 1, T = 2 exist
    (with their int8 copies, and their own full model), and the report keeps the DAN's setting first."""
    from bench import distill_pilot as dp

    names = dp.register_arch_teacher(1.0, 2.0)
    assert names == ["teacher-online-a1-t2", "teacher-retrain-online-a1-t2", "teacher-first-online-a1-t2"]
    assert [dp.int8_of(n) for n in names] == [f"{n}+int8" for n in names]
    assert dp.full_of("teacher-online-a1-t2") == "teacher-full-a1-t2" and dp.full_of(names[1]) == "full"
    with pytest.raises(ValueError, match="training/variants"):
        dp.register_arch_teacher(0.7, 3.0)
    cells = [{"alpha": a, "temperature": t, "phases": ph} for a, t, ph in
             ((1.0, 2.0, "first+calr"), (0.5, 2.0, "calr"), ("", "", "none"))]
    assert dp.arch_picks(cells, (0.5, 2.0)) == [(0.5, 2.0), (1.0, 2.0)]
    with pytest.raises(SystemExit):
        dp.main(["run", "--arch-setting", "1", "2"])  # the DAN has no arch setting: refused before any work
