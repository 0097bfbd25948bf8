"""Distillation targets and loss: a student learns from soft targets (a teacher's logits) and the labels.

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)

The soft targets are either the full model's logits (the re-training recipe's self-distillation,
`FitConfig.distill_from = "full"`) or a fine-tuned transformer's logits cached by `training teacher`
(`distill_from = "teacher"`, read here with `teacher_targets`). A cached teacher is aligned to the
training rows by the sha256 of the split file it was computed from: a missing or stale cache is refused.
A dataset without a cache of its own whose train file is another teacher's extra split (sst2-phrases/train:
sst2.npz's `phrases`) reads it there (`training.teacher_logits.cache_source`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from slimtext.data import split_path
from training.spacy_vectors import sha256_of
from training.teacher_logits import cache_path, cache_source, load_teacher_logits


def check_distill(alpha: float, temperature: float) -> None:
    """Refuse a weight outside [0, 1] or a temperature that is not positive."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation weight alpha must be in [0, 1], got {alpha}")
    if not temperature > 0.0:
        raise ValueError(f"distillation temperature must be > 0, got {temperature}")


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, alpha: float,
                 temperature: float) -> torch.Tensor:
    """Mean over the batch of alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels);
    `student`, `teacher`: logits (B, C); alpha = 0 is plain cross-entropy, computed as such."""
    check_distill(alpha, temperature)
    if teacher.shape != student.shape:
        raise ValueError(f"teacher logits {tuple(teacher.shape)} do not match the student's {tuple(student.shape)}")
    ce = F.cross_entropy(student, labels)
    if alpha == 0.0:
        return ce
    t = temperature
    kd = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1),
                  log_target=True, reduction="batchmean") * t * t
    return (1 - alpha) * ce + alpha * kd


def teacher_targets(dataset_dir: str | Path, split: str, labels: list[str], rows: int,
                    directory: str | Path | None = None) -> torch.Tensor:
    """The cached teacher's float32 logits (rows, len(labels)) for `split` of the dataset in `dataset_dir`,
    columns in the order of `labels`. The cache must have been computed from this very split file (same
    sha256); `rows` may be fewer than the file's (a `limit_train` run keeps the file's first rows)."""
    dataset_dir = Path(dataset_dir)
    path = split_path(dataset_dir, split)
    # sst2-phrases/train: its own cache where there is one, else sst2.npz's split `phrases`
    dataset, cached_split = cache_source(dataset_dir.name, split, directory)
    try:
        logits, cached_labels = load_teacher_logits(dataset, cached_split, sha256_of(path), directory)
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise ValueError(f"cannot distill from the teacher on {dataset_dir.name}/{split}: {e}") from e
    if sorted(cached_labels) != sorted(labels):
        raise ValueError(f"{cache_path(dataset, directory)}: teacher labels {cached_labels} are not the task's "
                         f"labels {labels}")
    if logits.shape[0] < rows:
        raise ValueError(f"{cache_path(dataset, directory)}: {logits.shape[0]} teacher rows for {path}, "
                         f"the task has {rows}")
    order = [cached_labels.index(lab) for lab in labels]
    return torch.from_numpy(logits[:rows, order].copy())
