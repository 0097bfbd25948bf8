import pytest
import torch

from training.calr import CALR, calr_lr


def test_triangle_within_an_epoch_and_annealing_between_epochs():
    lo, hi, steps = 1e-4, 1e-2, 100
    lr = [calr_lr(t, steps, 50, lo, hi) for t in range(300)]
    assert lr[0] == pytest.approx(lo)
    assert lr[50] == pytest.approx(hi)  # peak mid-epoch
    assert lr[25] == pytest.approx((lo + hi) / 2)
    assert max(lr[100:200]) == pytest.approx(hi * 0.1)  # epoch 2: lr_high annealed x0.1
    # epoch 3: 1e-2 * 0.01 = 1e-4 <= lr_low, so both reset to their start values
    assert max(lr[200:300]) == pytest.approx(hi)


def test_scheduler_drives_the_optimizer():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.0)
    sched = CALR(opt, 1e-3, 1e-1, steps_per_epoch=10, step_size=5)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([calr_lr(t, 10, 5, 1e-3, 1e-1) for t in range(20)])


def test_bad_bounds_fail_early():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError):
        CALR(opt, 1e-2, 1e-3, steps_per_epoch=10)
