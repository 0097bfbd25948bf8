"""The teacher's logits cache: `training/teacher_cache/<dataset>.npz` (committed, small), float16 logits of every
split (for sst2 also the 67k `sst2-phrases` training phrases, as split `phrases`), the label order, and each split
file's sha256, so a cache made from other data is refused (`load_teacher_logits`). Written by `training teacher`
(training/teacher.py), read by distillation (training/distill.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR = Path(__file__).resolve().parent / "teacher_cache"
# extra texts labelled by a dataset's teacher: split name -> (dataset, split) under the same dataset root
EXTRA_TEXTS: dict[str, dict[str, tuple[str, str]]] = {"sst2": {"phrases": ("sst2-phrases", "train")}}


def cache_path(dataset: str, directory: str | Path | None = None) -> Path:
    return Path(directory or CACHE_DIR) / f"{dataset}.npz"


def cache_source(dataset: str, split: str, directory: str | Path | None = None) -> tuple[str, str]:
    """(cache, split in it) that holds the teacher's logits for `dataset`'s `split`: the dataset's own cache
    when `directory` has one (a teacher fine-tuned on that dataset: `training teacher --dataset sst2-phrases`).
    Otherwise a dataset whose training file another dataset's teacher labelled as an extra split (EXTRA_TEXTS:
    sst2-phrases/train is sst2's split `phrases`) reads that teacher's cache; its other splits read the
    same-named splits there (sst2-phrases' dev/test are sst2's). The caller still matches the file by sha256, so
    a different file is refused."""
    if cache_path(dataset, directory).is_file():
        return dataset, split
    for owner, extras in EXTRA_TEXTS.items():
        for name, (other, other_split) in extras.items():
            if other == dataset:
                return owner, name if split == other_split else split
    return dataset, split


def write_cache(path: Path, labels: list[str], splits: dict[str, tuple[str, str, np.ndarray]],
                meta: dict[str, Any]) -> None:
    """`splits`: name -> (source file as dataset/file, its sha256, float logits [N, C]); stored float16."""
    arrays: dict[str, np.ndarray] = {"labels": np.array(labels, dtype=np.str_),
                                     "splits": np.array(list(splits), dtype=np.str_),
                                     "meta": np.array(json.dumps(meta, sort_keys=True))}
    for name, (source, sha, logits) in splits.items():
        if logits.shape != (logits.shape[0], len(labels)):
            raise ValueError(f"split {name}: logits {logits.shape} do not match {len(labels)} labels")
        arrays[f"logits_{name}"] = logits.astype(np.float16)
        arrays[f"sha256_{name}"] = np.array(sha)
        arrays[f"source_{name}"] = np.array(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def load_teacher_logits(dataset: str, split: str, texts_sha: str,
                        directory: str | Path | None = None) -> tuple[np.ndarray, list[str]]:
    """(float32 logits [N, C] in the split file's row order, label order) cached for `dataset`'s `split`;
    `texts_sha` is the sha256 of the split file the caller reads (`sha256_of(path)`): a cache made from
    another file is refused."""
    path = cache_path(dataset, directory)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no teacher cache for {dataset}; run `python -m training teacher "
                                f"--dataset {dataset}`")
    with np.load(path, allow_pickle=False) as z:
        splits = [str(s) for s in z["splits"]]
        if split not in splits:
            raise KeyError(f"{path}: no split {split!r} (cached: {', '.join(splits)})")
        cached_sha, source = str(z[f"sha256_{split}"]), str(z[f"source_{split}"])
        if cached_sha != texts_sha:
            raise ValueError(f"{path}: stale teacher cache: split {split} was computed from {source} with sha256 "
                             f"{cached_sha}, the file given has {texts_sha}; re-run `python -m training teacher "
                             f"--dataset {dataset}`")
        return z[f"logits_{split}"].astype(np.float32), [str(s) for s in z["labels"]]


def cache_meta(dataset: str, directory: str | Path | None = None) -> dict[str, Any]:
    with np.load(cache_path(dataset, directory), allow_pickle=False) as z:
        return json.loads(str(z["meta"]))
