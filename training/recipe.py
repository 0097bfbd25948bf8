"""`run`'s recipe when the user names none: the best one measured for the model, the vectors and the data at hand.
`make run` and `python -m training run` (or `slimtext run`) with no options get the same.

- The DAN with the 300-d vectors, where phrase-level data sits next to the dataset (`<dataset>-phrases/`, the
  standard SST protocol: 67,398 labelled phrases, the same dev and test): 3 epochs of first training on the
  phrases, then `online-nowd-pure-r3-h0.0001-l1e-05`, chosen on dev in docs/accuracy-phrases.md (3 seeds of a
  6-epoch first training: lowrank mean dev 83.03 against 81.00 for the sentence-level recipe; the teacher's recipe
  had the lower dev, 82.57, so it is not the default; seed 0 kept epoch 3). With 3 epochs, `make accuracy`
  (docs/accuracy-sst2.md): lowrank dev 82.80, test 82.46, 133-136 s a seed.
- The DAN with the 300-d vectors on sentences: `online-nowd-pure` (the d = 300 sweep's choice on SST-2 dev).
- Anything else: `online` (the paper's method, the d = 50 recipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slimtext.data import datasets_root, split_path
from training.workbench import DataConfig

Phrases = Literal["auto", "yes", "no"]
PHRASE_METHOD = "online-nowd-pure-r3-h0.0001-l1e-05"
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


def choose(data: DataConfig, model: str, method: str | None = None, epochs: int | None = None,
           name: str | None = None, phrases: Phrases = "auto") -> Recipe:
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
    return Recipe(phrased, method or PHRASE_METHOD, epochs or PHRASE_EPOCHS, default_name)
