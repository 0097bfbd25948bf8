"""`run`'s default recipe (training/recipe.py): the best measured for the model, vectors and data, and the same
one `make run` gets."""

import subprocess
from pathlib import Path

import pytest

from training.recipe import PHRASE_EPOCHS, PHRASE_METHOD, choose
from training.workbench import DataConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root(tmp_path):
    for name in ("sst2", "sst2-phrases", "trec"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "train.tsv").write_text("label\ttext\npos\tgood\n")
    return tmp_path


def data(root, dataset="sst2", vectors="spacy300", **kw):
    return DataConfig(dataset=dataset, data_root=root, vectors=vectors, **kw)


def test_the_dan_at_300d_trains_on_the_phrases_where_they_are(root):
    r = choose(data(root, limit_train=100), "dan")
    assert (r.data.dataset, r.method, r.train_epochs, r.name) == ("sst2-phrases", PHRASE_METHOD, PHRASE_EPOCHS,
                                                                  "sst2-dan")
    assert r.data.vectors == "spacy300" and r.data.limit_train == 100 and r.data.data_root == root
    # no phrases next to trec: the sentence-level d = 300 recipe
    assert choose(data(root, "trec"), "dan") == choose(data(root, "trec"), "dan", phrases="auto")
    assert (choose(data(root, "trec"), "dan").method, choose(data(root, "trec"), "dan").data.dataset) == (
        "online-nowd-pure", "trec")


def test_other_models_vectors_and_explicit_choices(root):
    assert choose(data(root), "dan", phrases="no").method == "online-nowd-pure"
    low = choose(data(root, vectors="glove50"), "dan")
    assert (low.method, low.data.dataset, low.train_epochs, low.name) == ("online", "sst2", None, None)
    assert choose(data(root), "cnn").method == "online" and choose(data(root), "cnn").data.dataset == "sst2"
    cnn = choose(data(root), "cnn", phrases="yes")
    assert (cnn.data.dataset, cnn.method, cnn.train_epochs, cnn.name) == ("sst2-phrases", "online", None, "sst2-cnn")
    mine = choose(data(root), "dan", method="online", epochs=1, name="x")
    assert (mine.data.dataset, mine.method, mine.train_epochs, mine.name) == ("sst2-phrases", "online", 1, "x")


def test_phrases_yes_without_them_is_a_clear_error(root, tmp_path):
    with pytest.raises(ValueError, match="no trec-phrases/"):
        choose(data(root, "trec"), "dan", phrases="yes")
    with pytest.raises(ValueError, match="--data names a folder"):
        choose(DataConfig(data=root / "sst2", vectors="spacy300"), "dan", phrases="yes")
    assert choose(DataConfig(data=root / "sst2", vectors="spacy300"), "dan").data.data == root / "sst2"


def test_make_run_passes_no_recipe_of_its_own():
    """`make run` = `python -m training run` with its defaults (issue 23: a user typing the command gets the same)."""
    out = subprocess.run(["make", "-n", "-B", "-o", ".venv/.installed", "models", "MODELS=/tmp/m"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if "-m training run" in x)
    assert "--method" not in line and "--epochs" not in line and "--vectors spacy300" in line


def test_the_phrases_own_teacher_is_used_only_where_its_cache_matches_the_file(root, tmp_path):
    """`run` distills from the teacher fine-tuned on the phrases when that teacher's cache was computed from this
    very train file (sha256); with no cache, or one from another file, it falls back to the teacher-free recipe."""
    import numpy as np

    from training.recipe import PHRASE_TEACHER_METHOD
    from training.spacy_vectors import sha256_of
    from training.teacher_logits import cache_path, write_cache

    cache = tmp_path / "cache"
    assert choose(data(root), "dan", teacher_dir=cache).method == PHRASE_METHOD  # no cache at all
    train = root / "sst2-phrases" / "train.tsv"
    write_cache(cache_path("sst2-phrases", cache), ["neg", "pos"],
                {"train": ("sst2-phrases/train.tsv", sha256_of(train), np.zeros((1, 2), np.float32))}, {})
    assert choose(data(root), "dan", teacher_dir=cache).method == PHRASE_TEACHER_METHOD
    assert choose(data(root), "dan", method="online", teacher_dir=cache).method == "online"  # explicit wins
    train.write_text("label\ttext\npos\tgood\nneg\tbad\n")  # another file: the cache is stale
    assert choose(data(root), "dan", teacher_dir=cache).method == PHRASE_METHOD
