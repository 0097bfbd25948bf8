"""Re-training schedules: FitConfig stays compatible, and each schedule has the shape it claims."""

import pytest
import torch
from pydantic import ValidationError

from training.calr import CALR, calr_lr
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


@pytest.mark.parametrize("schedule", ["adam", "calr"])
def test_fused_adam_takes_the_same_steps_as_torch_default(schedule):
    """make_optimizer's Adam is torch's fused CPU kernel (one pass per parameter, ~10x faster on the embedding);
    under a changing lr and weight decay its parameters follow the per-op default Adam to float rounding."""
    cfg = FitConfig(schedule=schedule, epochs=3, weight_decay=1e-4)
    final = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Linear(40, 30)
        opt, sched = make_optimizer(model, cfg, steps_per_epoch=20)
        if not fused:  # the same optimizer rebuilt with torch's default implementation
            opt = torch.optim.Adam(model.parameters(), lr=opt.param_groups[0]["lr"], weight_decay=1e-4)
            sched = CALR(opt, cfg.lr_low, cfg.lr_high, steps_per_epoch=20,
                         step_size=max(1, 20 // (2 * cfg.calr_cycles))) if schedule == "calr" else None
        else:
            assert opt.defaults["fused"] is True
        g = torch.Generator().manual_seed(1)
        for _ in range(cfg.epochs * 20):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
            if sched is not None:
                sched.step()
        final.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.manual_seed(0)
    start = torch.cat([p.detach().flatten() for p in torch.nn.Linear(40, 30).parameters()])
    assert (final[1] - start).abs().max() > 1e-3  # the steps did move the weights
    torch.testing.assert_close(final[0], final[1], rtol=0, atol=1e-5)
