"""Compression methods: one registry entry per kind of method, and the named variants the sweep runs.

    bench = Workbench(task, "dan", seed=0, cache_dir=...)
    outcome = apply_method(METHODS["online"], bench, reduction=0.9)

A `MethodKind` is the code (an `apply(bench, method, reduction) -> Outcome` function) plus the flags
callers ask instead of comparing names: `low_rank` (factorizes the embedding; the rank comes from
the target reduction p or from the share of singular-value energy kept), `retrains` (re-trains after
compressing, so `retrain` settings apply), `quantizes` (stores b-bit weights; needs `bits`).
A `Method` is a named setting of a kind (bits, scope, energy, re-training overrides). Kinds:

- full          the trained model, uncompressed;
- online        SVD of the *trained* embedding, then re-train the whole network (the paper);
- noretrain     the same factors, evaluated without re-training (ablation);
- offline       SVD of the *pretrained GloVe* rows before training; the factors A, B stay frozen and
                only the rest of the network trains (the paper's offline baseline re-trains no factor);
- quant         simulated post-training b-bit per-row quantization of the embedding or of every
                weight (evaluated dequantized; named `sim-int<b>-per-row-<scope>`, not the served int8);
- online_quant  online low-rank + re-train, then b-bit factors (and weights, scope="model").

A method's `train` overrides the first training (its full model is then cached under its own key): the
`teacher-*` variants distill from the fine-tuned MiniLM teacher's cached logits there and/or in the
re-training (`distill_from="teacher"`; training/distill.py, docs/distill-pilot.md).

Every method returns an `Outcome`: the model to evaluate (weights dequantized where quantized) and
the bytes each quantized parameter is stored in. Adding one: docs/extending.md.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch.nn as nn
from pydantic import BaseModel, ConfigDict, Field, model_validator

from training.lowrank import factorize, reduction_of_rank
from training.model import LowRankEmbedding
from training.quantize import fake_quantize_, model_bytes
from training.train import FitConfig, accuracy, fit, seed_everything
from training.workbench import Workbench, rank_key_of


@dataclass
class Outcome:
    model: nn.Module
    quantized: dict[str, int] = field(default_factory=dict)  # parameter name -> stored bytes
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        return self.model.embedding.rank


Apply = Callable[[Workbench, "Method", "float | None"], Outcome]


@dataclass(frozen=True)
class MethodKind:
    name: str
    apply: Apply
    low_rank: bool = False
    retrains: bool = False
    quantizes: bool = False


KINDS: dict[str, MethodKind] = {}
METHODS: dict[str, Method] = {}


def register_kind(kind: MethodKind) -> MethodKind:
    KINDS[kind.name] = kind
    return kind


class Method(BaseModel):
    """One compression method with its settings; `retrain` overrides the model's re-training FitConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: str
    bits: int | None = Field(default=None, description="quantizing kinds: 8, 4 or 2")
    scope: Literal["embedding", "model"] = "embedding"
    energy: float | None = Field(default=None, gt=0, le=1, description="rank from the energy kept, not p")
    retrain: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the first training's FitConfig "
                                  "(e.g. distillation from the cached teacher); the full model is then its own")
    word_dropout: float | None = Field(default=None, ge=0, lt=1, description="DAN word dropout while re-training")
    served_as: Literal["lowrank"] | None = Field(default=None, description="the artifact name `run` exports it "
                                                 "under (<prefix>-lowrank); None: <prefix>-<method name>")

    @model_validator(mode="after")
    def _check(self) -> Method:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}; choose from {sorted(KINDS)}")
        if (self.bits is not None) != self.quantizes:
            raise ValueError(f"{self.name}: bits go with quantizing kinds only, and those need them")
        if self.bits is not None and self.bits not in (2, 4, 8):
            raise ValueError(f"{self.name}: bits must be 8, 4 or 2")
        if self.energy is not None and not self.low_rank:
            raise ValueError(f"{self.name}: energy-based rank needs a low-rank method")
        if (self.retrain or self.word_dropout is not None) and not self.retrains:
            raise ValueError(f"{self.name}: only re-training methods take re-training settings")
        FitConfig(**self.retrain)  # unknown or invalid keys fail here, not mid-sweep
        first = FitConfig(**self.train)
        if self.train and self.kind == "offline":
            raise ValueError(f"{self.name}: the offline kind trains its own model; it takes no first-training settings")
        if first.distill_alpha > 0 and first.distill_from != "teacher":
            raise ValueError(f"{self.name}: the first training has no full model to distill from; "
                             "set distill_from='teacher' (the cached teacher's logits)")
        return self

    @property
    def uses_teacher(self) -> bool:
        """Whether the first training or the re-training reads the cached teacher's logits."""
        return any(c.get("distill_from") == "teacher" and c.get("distill_alpha", 1.0) > 0
                   for c in (self.train, self.retrain))

    @property
    def spec(self) -> MethodKind:
        return KINDS[self.kind]

    @property
    def low_rank(self) -> bool:
        return self.spec.low_rank

    @property
    def retrains(self) -> bool:
        return self.spec.retrains

    @property
    def quantizes(self) -> bool:
        return self.spec.quantizes

    @property
    def uses_reduction(self) -> bool:
        return self.low_rank and self.energy is None

    def check_reduction(self, reduction: float | None) -> None:
        """The one check that a method gets the target reduction p it needs (config validation and
        `apply_method` both call it)."""
        if self.uses_reduction and reduction is None:
            raise ValueError(f"method {self.name} needs a target reduction (--reduction)")

    @property
    def quantization(self) -> str | None:
        """The name of what this method does to weights, as recorded in manifests: simulated (fake)
        per-row quantization, evaluated and exported dequantized; distinct from the served
        `int8-weights-per-row` (slimtext.manifest.QUANTIZATIONS)."""
        return f"sim-int{self.bits}-per-row-{self.scope}" if self.quantizes else None


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name]


# --- the kinds: (bench, method, reduction) -> Outcome ----------------------------------------------

def _full(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(bench.full(method))


def _online(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(bench.online(method, reduction), info={"retrain": bench.retrain_cfg_for(method).model_dump()})


def _noretrain(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    return Outcome(bench.factorized_full(method, reduction))


def _offline(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    def make():
        e = bench.task.initial_embedding(bench.seed)  # the pretrained rows, before any training
        a, b, _ = factorize(e, bench.rank_for(e, method, reduction))
        embedding = LowRankEmbedding(a, b)
        embedding.requires_grad_(False)  # frozen: the offline baseline trains the network around fixed factors
        seed_everything(bench.seed)
        model = bench.build(embedding)
        model, history = fit(model, bench.task.train, bench.task.dev, bench.train_cfg, bench.seed, log=bench.log)
        return model, {"history": history}
    return Outcome(bench.cached(f"offline-{rank_key_of(method, reduction)}", make))


def _quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(bench.full(method))
    return Outcome(model, quantized=fake_quantize_(model, method.bits, method.scope))


def _online_quant(bench: Workbench, method: Method, reduction: float | None) -> Outcome:
    model = copy.deepcopy(bench.online(method, reduction))
    return Outcome(model, quantized=fake_quantize_(model, method.bits, method.scope))


register_kind(MethodKind("full", _full))
register_kind(MethodKind("online", _online, low_rank=True, retrains=True))
register_kind(MethodKind("noretrain", _noretrain, low_rank=True))
register_kind(MethodKind("offline", _offline, low_rank=True))
register_kind(MethodKind("quant", _quant, quantizes=True))
register_kind(MethodKind("online_quant", _online_quant, low_rank=True, retrains=True, quantizes=True))

_NO_KD = {"distill_alpha": 0.0}
_RECIPE_VARIANTS = [  # the d = 50 pilots of the re-training recipe (online's CALR + distillation, one knob changed)
    Method(name="online-plain", kind="online", retrain=_NO_KD),  # without distillation
    Method(name="online-long", kind="online", retrain={"epochs": 30}),  # twice the re-training
    Method(name="online-hot", kind="online", retrain={"lr_high": 1e-2}),  # a higher CALR peak
    Method(name="online-mild", kind="online", retrain={"distill_alpha": 0.5, "distill_temperature": 2.0}),
    Method(name="online-pure", kind="online", retrain={"distill_alpha": 1.0}),  # teacher's soft targets only
]
# the d = 300 DAN recipe (no word dropout) crossed with the other re-training knobs (chosen per dataset on dev)
_NOWD_VARIANTS = [
    Method(name="online-nowd-long", kind="online", word_dropout=0.0, retrain={"epochs": 30}),
    Method(name="online-nowd-pure", kind="online", word_dropout=0.0, retrain={"distill_alpha": 1.0},
           served_as="lowrank"),
    Method(name="online-nowd-plain", kind="online", word_dropout=0.0, retrain=_NO_KD),
]


def teacher_methods(alpha: float, temperature: float, tag: str = "") -> list[Method]:
    """Distillation from the cached MiniLM teacher (training/teacher_cache, training.distill) at one (alpha, T),
    with the d = 300 DAN re-training recipe (no word dropout): `teacher-full` (the first training learns from
    the teacher), `teacher-online-nowd` (the first training and the CALR re-training both learn from it),
    `teacher-retrain-online-nowd` (only the re-training does; it starts from the plain full model) and
    `teacher-first-online-nowd-pure` (`online-nowd-pure`, distilling from the full DAN, on `teacher-full`)."""
    kd = {"distill_alpha": alpha, "distill_temperature": temperature, "distill_from": "teacher"}
    return [Method(name=f"teacher-full{tag}", kind="full", train=kd),
            Method(name=f"teacher-online-nowd{tag}", kind="online", word_dropout=0.0, train=kd, retrain=kd),
            Method(name=f"teacher-retrain-online-nowd{tag}", kind="online", word_dropout=0.0, retrain=kd),
            Method(name=f"teacher-first-online-nowd-pure{tag}", kind="online", word_dropout=0.0, train=kd,
                   retrain={"distill_alpha": 1.0})]


# the pilot's grid (docs/distill-pilot.md; tags -a<alpha>-t<T>) and, untagged, the setting it chose
TEACHER_GRID = [(alpha, t) for t in (1.0, 2.0, 4.0) for alpha in (0.5, 0.9)]
TEACHER_DEFAULT = (0.5, 2.0)  # chosen on TREC dev, seed 0 (docs/distill-pilot.md)
_TEACHER_VARIANTS = [*teacher_methods(*TEACHER_DEFAULT),
                     *[m for a, t in TEACHER_GRID for m in teacher_methods(a, t, f"-a{a:g}-t{t:g}")]]


# Re-training schedules for a 10x larger training set (phrase-level SST-2, 67k examples; issue 23): a few epochs
# of CALR (each epoch is ~1,050 steps instead of ~110), lower peaks, lr_low and cycles per epoch as knobs.
# (epochs, lr_high, lr_low, calr_cycles); tag -r<epochs>-h<lr_high>[-l<lr_low>][-c<cycles>]
PHRASE_SCHEDULES = [(3, 3e-3, 1e-4, 1), (3, 1e-3, 1e-4, 1), (3, 1e-3, 1e-5, 1), (3, 1e-3, 1e-4, 4),
                    (5, 1e-3, 1e-4, 1), (3, 3e-4, 1e-5, 1),
                    (3, 1e-4, 1e-5, 1), (3, 3e-4, 1e-5, 4),  # added after the first six's results
                    (3, 3e-5, 3e-6, 1)]  # added after those: lower peaks kept winning on dev
# (alpha, T) of the teacher tried on sst2-phrases (the sentence-level pilot chose 0.5, 2)
PHRASE_TEACHER_GRID = [(0.5, 2.0), (0.9, 2.0), (1.0, 2.0)]


def schedule_tag(epochs: int, lr_high: float, lr_low: float = 1e-4, cycles: int = 1) -> str:
    return (f"-r{epochs}-h{lr_high:g}" + (f"-l{lr_low:g}" if lr_low != 1e-4 else "")
            + (f"-c{cycles}" if cycles != 1 else ""))


def phrase_methods(epochs: int, lr_high: float, lr_low: float = 1e-4, cycles: int = 1,
                   teacher: list[tuple[float, float]] = PHRASE_TEACHER_GRID) -> list[Method]:  # noqa: B006
    """The d = 300 DAN re-training recipes (no word dropout) with a short CALR schedule: `online-nowd-pure<s>`
    (soft targets of the full DAN only), `online-nowd-plain<s>` (labels only), and per teacher (alpha, T):
    `teacher-online-nowd<s>-a-t` (first training and re-training learn from the teacher),
    `teacher-retrain-online-nowd<s>-a-t` (the re-training only) and `teacher-first-online-nowd-pure<s>-a-t`
    (the teacher-trained full DAN, re-trained on its own soft targets)."""
    sched = {"epochs": epochs, "lr_high": lr_high, "lr_low": lr_low, "calr_cycles": cycles}
    s = schedule_tag(epochs, lr_high, lr_low, cycles)
    out = [Method(name=f"online-nowd-pure{s}", kind="online", word_dropout=0.0,
                  retrain={**sched, "distill_alpha": 1.0}),
           Method(name=f"online-nowd-plain{s}", kind="online", word_dropout=0.0, retrain={**sched, **_NO_KD})]
    for alpha, t in teacher:
        kd = {"distill_alpha": alpha, "distill_temperature": t, "distill_from": "teacher"}
        tag = f"-a{alpha:g}-t{t:g}"
        out += [Method(name=f"teacher-online-nowd{s}{tag}", kind="online", word_dropout=0.0, train=kd,
                       retrain={**sched, **kd}),
                Method(name=f"teacher-retrain-online-nowd{s}{tag}", kind="online", word_dropout=0.0,
                       retrain={**sched, **kd}),
                Method(name=f"teacher-first-online-nowd-pure{s}{tag}", kind="online", word_dropout=0.0, train=kd,
                       retrain={**sched, "distill_alpha": 1.0})]
    return out


# the teacher's re-trainings ran at the schedules chosen on dev (the first six's best, then the eight's best)
PHRASE_TEACHER_SCHEDULES = [(3, 3e-4, 1e-5, 1), (3, 1e-4, 1e-5, 1)]
_PHRASE_VARIANTS = [m for sched in PHRASE_SCHEDULES for m in phrase_methods(
    *sched, teacher=PHRASE_TEACHER_GRID if sched in PHRASE_TEACHER_SCHEDULES else [])]
# the teacher-trained full models of that grid not already registered (alpha = 1: soft targets only)
_PHRASE_TEACHER_FULL = [Method(name=f"teacher-full-a{a:g}-t{t:g}", kind="full",
                               train={"distill_alpha": a, "distill_temperature": t, "distill_from": "teacher"})
                        for a, t in PHRASE_TEACHER_GRID if (a, t) not in TEACHER_GRID]
# their int8 copies (the embedding stored as int8 per row, as `int8` does to the plain full model)
_PHRASE_TEACHER_INT8 = [Method(name=f"teacher-full-a{a:g}-t{t:g}+int8", kind="quant", bits=8,
                               train={"distill_alpha": a, "distill_temperature": t, "distill_from": "teacher"})
                        for a, t in PHRASE_TEACHER_GRID]
# the CNN on the phrases (it has no word dropout): the DAN's dev-chosen short schedule for 2 epochs, soft targets of
# the full CNN, or of the teacher (re-training only); a pilot, seed 0
_CNN_PHRASE_SCHEDULE = {"epochs": 2, "lr_high": 1e-4, "lr_low": 1e-5}
_PHRASE_CNN = [Method(name="online-pure-r2-h0.0001-l1e-05", kind="online",
                      retrain={**_CNN_PHRASE_SCHEDULE, "distill_alpha": 1.0}),
               Method(name="teacher-retrain-online-r2-h0.0001-l1e-05-a0.5-t2", kind="online",
                      retrain={**_CNN_PHRASE_SCHEDULE, "distill_alpha": 0.5, "distill_temperature": 2.0,
                               "distill_from": "teacher"})]
# the CNN's re-training doubled (5 -> 10 epochs; `online-long`'s 30 epochs are six times the CNN's budget)
_CNN_VARIANTS = [Method(name="online-10ep", kind="online", retrain={"epochs": 10})]
for _m in [
    Method(name="full", kind="full"),
    # the model's default re-training recipe (CALR + distillation): the paper's online method, served as lowrank
    Method(name="online", kind="online", served_as="lowrank"),
    *_RECIPE_VARIANTS,
    # no word dropout while re-training (the d = 300 DAN's recipe)
    Method(name="online-nowd", kind="online", word_dropout=0.0, served_as="lowrank"),
    *_NOWD_VARIANTS,
    *_CNN_VARIANTS,
    *_TEACHER_VARIANTS,
    *_PHRASE_VARIANTS,
    *_PHRASE_TEACHER_FULL,
    *_PHRASE_TEACHER_INT8,
    *_PHRASE_CNN,
    # each variant's int8 copy, so a recipe chosen per dataset on dev has its online+int8 cell too
    *[Method(name=f"{m.name}+int8", kind="online_quant", bits=8, word_dropout=m.word_dropout, retrain=m.retrain,
             train=m.train)
      for m in (*_RECIPE_VARIANTS, *_NOWD_VARIANTS, *_CNN_VARIANTS, *_TEACHER_VARIANTS[1:4], *_PHRASE_VARIANTS,
                        *_PHRASE_CNN)],
    Method(name="online-e60", kind="online", energy=0.6),
    Method(name="online-e80", kind="online", energy=0.8),
    Method(name="noretrain", kind="noretrain"),
    Method(name="offline", kind="offline"),
    *[Method(name=f"int{b}", kind="quant", bits=b) for b in (8, 4, 2)],
    *[Method(name=f"int{b}-model", kind="quant", bits=b, scope="model") for b in (8, 4, 2)],
    Method(name="online+int8", kind="online_quant", bits=8),
    Method(name="online-nowd+int8", kind="online_quant", bits=8, word_dropout=0.0),  # d = 300's DAN recipe, int8
    Method(name="online+int8-model", kind="online_quant", bits=8, scope="model"),
    # re-training schedules, compared without distillation
    Method(name="sched-calr", kind="online", retrain=_NO_KD),
    Method(name="sched-adam", kind="online", retrain={**_NO_KD, "schedule": "adam", "lr": 1e-3}),
    # SGD + momentum 0.9 at three constant rates (0.05 left the DAN at chance on sst2)
    *[Method(name=name, kind="online", retrain={**_NO_KD, "schedule": "sgd", "lr": lr, "momentum": 0.9})
      for name, lr in (("sched-sgd", 0.01), ("sched-sgd-fast", 0.05), ("sched-sgd-slow", 0.002))],
    Method(name="sched-cosine", kind="online", retrain={**_NO_KD, "schedule": "cosine"}),
    Method(name="sched-onecycle", kind="online", retrain={**_NO_KD, "schedule": "onecycle"}),
    Method(name="sched-clr", kind="online", retrain={**_NO_KD, "schedule": "clr"}),
]:
    register_method(_m)


def apply_method(method: Method, bench: Workbench, reduction: float | None = None) -> Outcome:
    method.check_reduction(reduction)
    if method.uses_teacher:
        bench.teacher_logits()  # a missing or stale teacher cache fails here, before any training
    return method.spec.apply(bench, method, reduction if method.uses_reduction else None)


def evaluate(bench: Workbench, method: Method, reduction: float | None) -> dict[str, Any]:
    """Apply a method and measure it: dev/test accuracy, rank, parameters, bytes, seconds."""
    started = time.time()
    return measure(bench, method, reduction, apply_method(method, bench, reduction), started)


def measure(bench: Workbench, method: Method, reduction: float | None, outcome: Outcome,
            started: float | None = None) -> dict[str, Any]:
    model = outcome.model.eval()
    total_bytes, emb_bytes = model_bytes(model, outcome.quantized)
    v, d = len(bench.task.tok), model.embedding.dim
    return {
        "dataset": bench.task.name, "vocab": "extended" if bench.task.vocab_extra else "train",
        "vocab_size": v, "dim": d, "model": bench.arch, "method": method.name, "kind": method.kind,
        "reduction": reduction if method.uses_reduction else None, "seed": bench.seed,
        "bits": method.bits, "scope": method.scope if method.bits else None, "energy": method.energy,
        "rank": outcome.rank,
        "embedding_reduction_params": reduction_of_rank(v, d, outcome.rank) if outcome.rank else 0.0,
        "dev_acc": accuracy(model, bench.task.dev), "test_acc": accuracy(model, bench.task.test),
        "params": sum(p.numel() for p in model.parameters()),
        "model_bytes": total_bytes, "embedding_bytes": emb_bytes,
        "embedding_bytes_reduction": 1.0 - emb_bytes / (4 * v * d),
        "model_bytes_reduction": 1.0 - total_bytes / _full_bytes(model, v, d),
        "seconds": round(time.time() - started, 2) if started else None, **outcome.info,
    }


def _full_bytes(model: nn.Module, v: int, d: int) -> int:
    body = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embedding."))
    return 4 * (v * d + body)
