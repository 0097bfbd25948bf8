"""The re-training recipes added for phrase-level SST-2 (issue 23): CALR cycles per epoch (FitConfig.calr_cycles),
cache keys unchanged for configs that leave it at its default, and the registered short-schedule methods."""

from __future__ import annotations

import torch

from training.methods import METHODS, PHRASE_SCHEDULES, schedule_tag
from training.train import FitConfig, make_optimizer
from training.workbench import _cfg_json


def _lrs(cfg: FitConfig, steps: int) -> list[float]:
    opt, sched = make_optimizer(torch.nn.Linear(2, 2), cfg, steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_calr_cycles_per_epoch():
    base = FitConfig(schedule="calr", lr_low=1e-4, lr_high=1e-3)
    one = _lrs(base, 40)
    four = _lrs(base.model_copy(update={"calr_cycles": 4}), 40)
    assert max(range(40), key=one.__getitem__) == 20  # one triangle an epoch, peak mid-epoch
    peaks = [i for i in range(1, 39) if four[i] > four[i - 1] and four[i] >= four[i + 1]]
    assert peaks == [5, 15, 25, 35] and max(four) == max(one)


def test_default_cycles_keep_cache_keys():
    assert "calr_cycles" not in _cfg_json(FitConfig()) and "distill_from" not in _cfg_json(FitConfig())
    assert '"calr_cycles":4' in _cfg_json(FitConfig(calr_cycles=4))


def test_short_schedules_registered():
    for sched in PHRASE_SCHEDULES:
        m = METHODS[f"online-nowd-pure{schedule_tag(*sched)}"]
        epochs, high, low, cycles = sched
        assert m.retrain == {"epochs": epochs, "lr_high": high, "lr_low": low, "calr_cycles": cycles,
                             "distill_alpha": 1.0} and m.word_dropout == 0.0 and not m.uses_teacher
    t = METHODS["teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-a0.5-t2"]
    assert t.train["distill_from"] == "teacher" and t.retrain["distill_alpha"] == 1.0 and t.retrain["lr_high"] == 1e-4
    assert METHODS["teacher-first-online-nowd-pure-r3-h0.0001-l1e-05-a0.5-t2+int8"].bits == 8
    assert METHODS["teacher-full-a1-t2"].train["distill_alpha"] == 1.0
