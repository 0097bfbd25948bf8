"""The teacher's logits for phrase-level SST-2 (issue 23): `sst2-phrases/train` is labelled in sst2's cache as split
`phrases`, and distillation on `--dataset sst2-phrases` finds it there, matched by sha256 (training.teacher_logits.
cache_source, training.distill.teacher_targets). Offline and fast: tiny folders and caches written here; the last
test reads the shared phrases file and the committed cache (read-only), skipped where they are absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from slimtext.data import datasets_root
from training.distill import teacher_targets
from training.methods import METHODS, apply_method
from training.spacy_vectors import sha256_of
from training.teacher_logits import CACHE_DIR, cache_path, cache_source, write_cache
from training.train import FitConfig
from training.workbench import DataConfig, Task, Workbench


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("label\ttext\n" + "".join(f"{y}\t{x}\n" for y, x in rows), encoding="utf-8")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A dataset root with `sst2` (sentences) and `sst2-phrases` (more, shorter rows; the same dev/test files)."""
    sents = [("positive", "a good film"), ("negative", "a dull film"), ("positive", "great fun"),
             ("negative", "awful and dull")]
    phrases = [*sents, ("positive", "good"), ("negative", "dull"), ("positive", "great"), ("negative", "awful"),
               ("positive", "fun"), ("negative", "a dull")]
    held = [("positive", "good fun"), ("negative", "dull film")]
    for name, train in (("sst2", sents), ("sst2-phrases", phrases)):
        (tmp_path / name).mkdir()
        _write(tmp_path / name / "train.tsv", train)
        for split in ("dev", "test"):
            _write(tmp_path / name / f"{split}.tsv", held)
    return tmp_path


def _cache(root: Path, cache_dir: Path) -> dict[str, np.ndarray]:
    """sst2's teacher cache as `training teacher --dataset sst2` writes it: train/dev/test + split `phrases`.
    Columns (negative, positive); each split's logits are distinct (row i of split j: [j, i])."""
    files = {"train": "sst2/train.tsv", "dev": "sst2/dev.tsv", "test": "sst2/test.tsv",
             "phrases": "sst2-phrases/train.tsv"}
    splits, logits = {}, {}
    for j, (name, rel) in enumerate(files.items()):
        n = len((root / rel).read_text().splitlines()) - 1
        logits[name] = np.stack([np.full(n, float(j)), np.arange(n, dtype=float)], 1).astype(np.float32)
        splits[name] = (rel, sha256_of(root / rel), logits[name])
    write_cache(cache_path("sst2", cache_dir), ["negative", "positive"], splits, {"dataset": "sst2"})
    return logits


def test_cache_source_maps_the_phrases_to_sst2(tmp_path):
    assert cache_source("sst2-phrases", "train", tmp_path) == ("sst2", "phrases")
    assert cache_source("sst2-phrases", "dev", tmp_path) == ("sst2", "dev")  # the same files as sst2's (sha256)
    assert cache_source("sst2", "train", tmp_path) == ("sst2", "train")
    assert cache_source("trec", "test", tmp_path) == ("trec", "test")


def test_own_cache_wins_over_the_extra_split(root, tmp_path):
    """A teacher fine-tuned on the phrases themselves (`training teacher --dataset sst2-phrases`) is read in
    place of sst2's teacher's `phrases` split, for every split."""
    cache = tmp_path / "cache"
    _cache(root, cache)
    own = {}
    for j, split in enumerate(("train", "dev", "test")):
        rel = f"sst2-phrases/{split}.tsv"
        n = len((root / rel).read_text().splitlines()) - 1
        own[split] = (rel, sha256_of(root / rel), np.full((n, 2), 10.0 + j, dtype=np.float32))
    write_cache(cache_path("sst2-phrases", cache), ["negative", "positive"], own, {"dataset": "sst2-phrases"})
    assert cache_source("sst2-phrases", "train", cache) == ("sst2-phrases", "train")
    got = teacher_targets(root / "sst2-phrases", "train", ["negative", "positive"], 10, cache)
    assert torch.equal(got, torch.from_numpy(own["train"][2]))
    assert teacher_targets(root / "sst2-phrases", "dev", ["negative", "positive"], 2, cache)[0, 0].item() == 11.0
    # sst2's own splits still read sst2's cache
    assert teacher_targets(root / "sst2", "dev", ["negative", "positive"], 2, cache)[0, 0].item() == 1.0


def test_phrases_train_reads_sst2s_phrases_split(root, tmp_path):
    logits = _cache(root, tmp_path / "cache")
    got = teacher_targets(root / "sst2-phrases", "train", ["negative", "positive"], 10, tmp_path / "cache")
    assert torch.equal(got, torch.from_numpy(logits["phrases"]))
    assert torch.equal(teacher_targets(root / "sst2-phrases", "dev", ["positive", "negative"], 2, tmp_path / "cache"),
                       torch.from_numpy(logits["dev"][:, [1, 0]]))  # columns follow the task's label order
    # sst2's own splits are unchanged
    assert torch.equal(teacher_targets(root / "sst2", "train", ["negative", "positive"], 4, tmp_path / "cache"),
                       torch.from_numpy(logits["train"]))


def test_changed_phrases_file_refused(root, tmp_path):
    _cache(root, tmp_path / "cache")
    with open(root / "sst2-phrases" / "train.tsv", "a", encoding="utf-8") as f:
        f.write("positive\tfun film\n")
    with pytest.raises(ValueError, match=r"sst2-phrases/train: .*stale teacher cache: split phrases"):
        teacher_targets(root / "sst2-phrases", "train", ["negative", "positive"], 11, tmp_path / "cache")


def test_missing_cache_names_sst2(root, tmp_path):
    with pytest.raises(ValueError, match="no teacher cache for sst2"):
        teacher_targets(root / "sst2-phrases", "train", ["negative", "positive"], 10, tmp_path / "empty")


def test_workbench_distills_on_the_phrases(root, tmp_path):
    _cache(root, tmp_path / "cache")
    task = Task.load(root / "sst2-phrases", glove=False)
    bench = Workbench(task, "dan", 0, tmp_path / "runs", FitConfig(epochs=1, batch_size=4, lr=1e-2),
                      FitConfig(epochs=1, batch_size=4, schedule="calr", calr_cycles=2),
                      model_kwargs={"hidden": (8,)}, log=lambda *_: None, teacher_dir=tmp_path / "cache")
    assert bench.teacher_logits().shape == (10, 2)
    out = apply_method(METHODS["teacher-online-nowd-r3-h0.0001-l1e-05-a0.5-t2"], bench, 0.5)
    assert out.rank is not None


def test_real_phrases_match_the_committed_cache():
    try:
        folder = datasets_root() / "sst2-phrases"
    except FileNotFoundError:
        pytest.skip("no dataset root")
    if not (folder / "train.tsv").is_file() or not cache_path("sst2", CACHE_DIR).is_file():
        pytest.skip("no shared sst2-phrases data or no committed sst2 teacher cache")
    got = teacher_targets(folder, "train", ["negative", "positive"], 67398)
    assert got.shape == (67398, 2) and got.dtype == torch.float32


def test_run_with_the_teacher_in_the_first_training_trains_the_full_model_once(root, tmp_path, monkeypatch):
    """`run --method teacher-first-*` (the phrases' default where their own teacher cache matches): the full model
    it exports is the teacher-trained one the low-rank model is factorized from, trained once, not a plain full
    model next to a second, unexported teacher-trained one."""
    from training import runs, teacher_logits
    from training.recipe import PHRASE_TEACHER_METHOD
    from training.train import fit as real_fit

    files = {"train": "sst2-phrases/train.tsv", "dev": "sst2-phrases/dev.tsv", "test": "sst2-phrases/test.tsv"}
    splits = {k: (rel, sha256_of(root / rel),
                  np.tile([[2.0, -2.0]], (len((root / rel).read_text().splitlines()) - 1, 1)).astype(np.float32))
              for k, rel in files.items()}
    write_cache(cache_path("sst2-phrases", tmp_path / "cache"), ["negative", "positive"], splits, {})
    monkeypatch.setattr(teacher_logits, "CACHE_DIR", tmp_path / "cache")
    fits = []

    def counting_fit(*args, **kwargs):
        fits.append(kwargs.get("teacher_logits") is not None)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr("training.workbench.fit", counting_fit)
    cfg = runs.RunConfig(data=DataConfig(data=root / "sst2-phrases", glove=False), method=PHRASE_TEACHER_METHOD,
                         reduction=0.5, out_dir=tmp_path / "models", int8=False,
                         train=FitConfig(epochs=1, batch_size=4, lr=1e-2),
                         retrain=FitConfig(epochs=1, batch_size=4, schedule="calr", calr_cycles=2))
    result = runs.run(cfg, log=lambda *_: None)
    assert fits == [True, False]  # the full model with the teacher's soft targets, then the re-training
    full = next(m for m in result.manifests if m.name.endswith("-full"))
    assert full.training["config"]["train"]["distill_from"] == "teacher"
    assert {m.name.rsplit("-", 1)[1] for m in result.manifests} == {"full", "lowrank"}
