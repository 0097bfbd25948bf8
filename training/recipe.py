"""`run`'s recipe when the user names none: the best one measured for the model, the vectors and the data at hand.
`make run` and `python -m training run` (or `slimtext run`) with no options get the same.

- The DAN with the 300-d vectors, where phrase-level data sits next to the dataset (`<dataset>-phrases/`, the
  standard SST protocol: 67,398 labelled phrases, the same dev and test): 3 epochs of first training on the
  phrases, then
  - where the phrases have a teacher cache of their own computed from that very file
    (`training/teacher_cache/sst2-phrases.npz`, committed; `make teacher-phrases` re-makes it):
    `teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-a0.5-t2`, the teacher's soft targets in the first training
    (alpha 0.5, T 2), the low-rank model re-trained on its own full model's (`make accuracy`,
    docs/accuracy-sst2.md: lowrank dev 83.03 against 82.72 without the teacher, 3 seeds; test 82.76 vs 82.61);
  - otherwise `online-nowd-pure-r3-h0.0001-l1e-05`, chosen on dev in docs/accuracy-phrases.md (3 seeds of a
    6-epoch first training: lowrank mean dev 83.03 against 81.00 for the sentence-level recipe).
- The DAN with the 300-d vectors on sentences: `online-nowd-pure` (the d = 300 sweep's choice on SST-2 dev).
- Anything else: `online` (the paper's method, the d = 50 recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from slimtext.data import datasets_root, split_path
from training.workbench import DataConfig

Phrases = Literal["auto", "yes", "no"]
PHRASE_METHOD = "online-nowd-pure-r3-h0.0001-l1e-05"  # without a teacher
# with the teacher fine-tuned on the phrases, where its cache matches the phrases' train file
PHRASE_TEACHER_METHOD = "teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-a0.5-t2"
PHRASE_EPOCHS = 3  # the DAN's first training on the phrases


@dataclass(frozen=True)
class Recipe:
    data: DataConfig  # the phrases' folder where they are used
    method: str
    train_epochs: int | None  # None: the architecture's own
    name: str | None  # the artifact prefix: the dataset's name, not its phrases folder's


def phrase_data(data: DataConfig) -> DataConfig | None:
    """`<dataset>-phrases` under the same root, when `data` names a dataset and that folder has a train split."""
    if data.dataset is None:
        return None
    folder = datasets_root(data.data_root) / f"{data.dataset}-phrases"
    try:
        split_path(folder, "train")
    except (OSError, ValueError):
        return None
    return data.model_copy(update={"dataset": folder.name})


def phrase_teacher(folder: Path, directory: str | Path | None = None) -> bool:
    """Whether `folder` (a phrases dataset) has a teacher cache of its own computed from its very train file:
    `training teacher --dataset <name>` (committed for sst2-phrases: training/teacher_cache/sst2-phrases.npz)."""
    from training.spacy_vectors import sha256_of
    from training.teacher_logits import cache_source, load_teacher_logits

    if cache_source(folder.name, "train", directory) != (folder.name, "train"):
        return False
    try:
        load_teacher_logits(folder.name, "train", sha256_of(split_path(folder, "train")), directory)
    except (OSError, KeyError, ValueError):
        return False
    return True


def choose(data: DataConfig, model: str, method: str | None = None, epochs: int | None = None,
           name: str | None = None, phrases: Phrases = "auto", teacher_dir: str | Path | None = None) -> Recipe:
    """The recipe `run` uses; explicit choices (method, epochs, name) always win."""
    best = model == "dan" and data.vectors == "spacy300"
    phrased = phrase_data(data) if phrases == "yes" or (phrases == "auto" and best) else None
    if phrases == "yes" and phrased is None:
        where = "--data names a folder" if data.dataset is None else f"no {data.dataset}-phrases/ with a train split"
        raise ValueError(f"--phrases yes: {where} under the dataset root")
    if phrased is None:
        return Recipe(data, method or ("online-nowd-pure" if best else "online"), epochs, name)
    default_name = name or f"{data.dataset}-{model}"
    if model != "dan":
        return Recipe(phrased, method or "online", epochs, default_name)
    if method is None:
        folder = datasets_root(phrased.data_root) / str(phrased.dataset)
        method = PHRASE_TEACHER_METHOD if phrase_teacher(folder, teacher_dir) else PHRASE_METHOD
    return Recipe(phrased, method, epochs or PHRASE_EPOCHS, default_name)
