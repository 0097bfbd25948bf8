"""Teacher-labelled augmented text for phrase-level SST-2 (issue 23, Tang et al. 2019): the 6,920 training sentences
perturbed by masking and n-gram sampling (no POS-guided swaps), labelled by the fine-tuned MiniLM teacher, added to
the 67,398 phrases; then the DAN cells of bench/accuracy_phrases.py's dev-chosen teacher recipe on that set.

    nice -n 19 .venv/bin/python -m bench.accuracy_phrases_augment label   # write the augmented set (once)
    nice -n 19 .venv/bin/python -m bench.accuracy_phrases augmented   # its cells (resumable), then the report

The augmented dataset lives outside the repository (`<cache>/augment/sst2-phrases-aug/`: train.tsv = the phrases
followed by the new texts with the teacher's argmax as label; dev/test link to sst2-phrases'; the teacher's logits
for every train row in `<cache>/augment/teacher_cache/sst2-phrases-aug.npz`, matched by sha256 as for any dataset).
Per sentence, AUG_PER_SENTENCE draws: every word masked with probability P_MASK (the teacher sees `[MASK]`, the
student's text drops the word), then with probability P_NGRAM only a random n-gram (n in 1..5) is kept; drafts that
are empty, repeat a training phrase or repeat each other are dropped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from slimtext.data import datasets_root, read_examples, split_path
from training.spacy_vectors import cache_dir, sha256_of
from training.teacher_logits import cache_path, load_teacher_logits, write_cache

NAME = "sst2-phrases-aug"
AUG_PER_SENTENCE = 4
P_MASK = 0.1
P_NGRAM = 0.25
SEED = 0


def aug_root() -> Path:
    return cache_dir() / "augment"


def aug_folder() -> Path:
    return aug_root() / NAME


def teacher_dir() -> Path:
    return aug_root() / "teacher_cache"


def augment(sentences: list[str], per_sentence: int = AUG_PER_SENTENCE, p_mask: float = P_MASK,
            p_ngram: float = P_NGRAM, seed: int = SEED, known: set[str] | None = None) -> list[tuple[str, str]]:
    """(student text, teacher text) drafts: masking (the student's text drops the masked word) and n-gram sampling;
    empty drafts and repeats (of `known` texts or of each other) are dropped."""
    rng = np.random.default_rng(seed)
    seen = set(known or ())
    out = []
    for sentence in sentences:
        words = sentence.split()
        for _ in range(per_sentence):
            mask = rng.random(len(words)) < p_mask
            kept = list(range(len(words)))
            if rng.random() < p_ngram and words:
                n = int(rng.integers(1, 6))
                start = int(rng.integers(0, max(1, len(words) - n + 1)))
                kept = kept[start:start + n]
            student = " ".join(words[i] for i in kept if not mask[i])
            teacher = " ".join("[MASK]" if mask[i] else words[i] for i in kept)
            if not student or student in seen:
                continue
            seen.add(student)
            out.append((student, teacher))
    return out


def label(log=print) -> Path:
    """Write the augmented dataset and its teacher cache (skipped when they exist)."""
    import torch

    from training.teacher import FineTuned

    folder, cache = aug_folder(), cache_path(NAME, teacher_dir())
    if (folder / "train.tsv").is_file() and cache.is_file():
        log(f"{folder} exists")
        return folder
    torch.set_num_threads(1)
    root = datasets_root()
    phrases_path = split_path(root / "sst2-phrases", "train")
    phrases = read_examples(phrases_path)
    sentences = read_examples(split_path(root / "sst2", "train")).texts
    drafts = augment(sentences, known=set(phrases.texts))
    log(f"{len(drafts)} augmented texts from {len(sentences)} sentences")
    started = time.time()
    teacher = FineTuned.load(cache_dir() / "teachers" / "sst2")
    log(f"teacher loaded in {time.time() - started:.0f} s")
    # the checkpoint is the one that made the cache: its logits on dev match the cached ones
    dev = read_examples(split_path(root / "sst2", "dev"))
    cached_dev, cached_labels = load_teacher_logits("sst2", "dev", sha256_of(split_path(root / "sst2", "dev")))
    check = teacher.logits(dev.texts[:128])
    gap = float(np.abs(check - cached_dev[:128, [cached_labels.index(x) for x in teacher.labels]]).max())
    log(f"checkpoint vs cached dev logits (128 texts): max |diff| {gap:.4f}")
    if gap > 0.05:
        raise ValueError(f"the saved teacher does not reproduce the cached logits (max |diff| {gap})")
    started = time.time()
    new = teacher.logits([t for _, t in drafts])
    log(f"teacher labelled {len(drafts)} texts in {time.time() - started:.0f} s")
    old, labels = load_teacher_logits("sst2", "phrases", sha256_of(phrases_path))
    new = new[:, [teacher.labels.index(x) for x in labels]]  # the cache's column order
    folder.mkdir(parents=True, exist_ok=True)
    rows = [*zip(phrases.labels, phrases.texts, strict=True),
            *((labels[int(i)], s) for i, (s, _) in zip(new.argmax(1), drafts, strict=True))]
    tmp = folder / "train.tsv.tmp"
    tmp.write_text("label\ttext\n" + "".join(f"{y}\t{x}\n" for y, x in rows), encoding="utf-8")
    tmp.replace(folder / "train.tsv")
    for split in ("dev", "test"):
        link = folder / f"{split}.tsv"
        if not link.exists():
            link.symlink_to(split_path(root / "sst2-phrases", split))
    write_cache(cache, labels, {"train": (f"{NAME}/train.tsv", sha256_of(folder / "train.tsv"),
                                          np.concatenate([old, new]))},
                {"dataset": NAME, "teacher": "sst2", "augmented": len(drafts), "per_sentence": AUG_PER_SENTENCE,
                 "p_mask": P_MASK, "p_ngram": P_NGRAM, "seed": SEED,
                 "label_seconds": round(time.time() - started, 1)})
    log(f"wrote {folder} ({len(rows)} training rows) and {cache}")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] + " (its cells: `python -m "
                                     "bench.accuracy_phrases augmented`)")
    parser.add_argument("command", choices=["label"])
    parser.parse_args(argv)
    label()


if __name__ == "__main__":
    main()
