"""Re-training schedules: FitConfig stays compatible, and each schedule has the shape it claims."""

import pytest
import torch
from pydantic import ValidationError

from training.calr import calr_lr
from training.train import FitConfig, make_optimizer


def test_fitconfig_defaults_are_unchanged():
    cfg = FitConfig()
    assert (cfg.epochs, cfg.batch_size, cfg.schedule, cfg.lr, cfg.lr_low, cfg.lr_high) == (10, 32, "adam", 1e-3,
                                                                                           1e-4, 3e-3)
    assert (cfg.weight_decay, cfg.distill_alpha, cfg.distill_temperature) == (0.0, 0.0, 2.0)


@pytest.mark.parametrize("schedule", ["calr", "cosine", "onecycle", "clr"])
def test_cyclic_schedules_need_low_below_high(schedule):
    with pytest.raises(ValidationError):
        FitConfig(schedule=schedule, lr_low=1e-2, lr_high=1e-3)
    with pytest.raises(ValidationError):
        FitConfig(schedule="bogus")


def trajectory(cfg: FitConfig, steps_per_epoch: int) -> tuple[torch.optim.Optimizer, list[float]]:
    model = torch.nn.Linear(3, 2)
    opt, sched = make_optimizer(model, cfg, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return opt, lrs


def test_constant_schedules():
    opt, lrs = trajectory(FitConfig(schedule="adam", lr=2e-3, epochs=2), 5)
    assert isinstance(opt, torch.optim.Adam) and set(lrs) == {2e-3}
    opt, lrs = trajectory(FitConfig(schedule="sgd", lr=0.05, momentum=0.8, epochs=2), 5)
    assert isinstance(opt, torch.optim.SGD) and set(lrs) == {0.05}
    assert opt.param_groups[0]["momentum"] == 0.8


def test_cosine_anneals_from_high_to_low():
    _, lrs = trajectory(FitConfig(schedule="cosine", lr_low=1e-4, lr_high=3e-3, epochs=3), 10)
    assert lrs[0] == pytest.approx(3e-3)
    assert all(a >= b - 1e-12 for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] == pytest.approx(1e-4, abs=2e-5)


def test_onecycle_rises_to_its_peak_then_falls():
    _, lrs = trajectory(FitConfig(schedule="onecycle", lr_low=1e-4, lr_high=3e-3, epochs=4), 10)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert lrs[peak] == pytest.approx(3e-3, rel=1e-3)
    assert 0 < peak < len(lrs) - 1 and lrs[0] < 3e-3 / 10 and lrs[-1] < lrs[0]


def test_triangular_clr_repeats_calr_s_first_epoch_every_epoch():
    steps = 10
    _, clr = trajectory(FitConfig(schedule="clr", lr_low=1e-4, lr_high=3e-3, epochs=3), steps)
    _, calr = trajectory(FitConfig(schedule="calr", lr_low=1e-4, lr_high=3e-3, epochs=3), steps)
    first = [calr_lr(i, steps, steps // 2, 1e-4, 3e-3) for i in range(steps)]
    for e in range(3):
        assert clr[e * steps:(e + 1) * steps] == pytest.approx(first)
    assert max(calr[steps:2 * steps]) == pytest.approx(3e-4, rel=1e-6)  # CALR anneals its peak, CLR does not
    assert max(clr[steps:2 * steps]) == pytest.approx(3e-3, rel=1e-6)


def test_frozen_parameters_are_left_out_of_the_optimizer():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 2))
    model[0].requires_grad_(False)
    opt, _ = make_optimizer(model, FitConfig(), 5)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 3 * 2 + 2
