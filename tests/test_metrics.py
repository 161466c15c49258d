import numpy as np
import pytest
import torch

from memstab_testbed.metrics import auc, nearest_rmse, roc_points, tpr_at_fpr


def test_auc_counts_pairs_and_ties():
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 3], [2, 2]) == 0.5
    assert auc([2], [2]) == 0.5


def test_auc_matches_the_roc_area():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 50), rng.normal(0, 1, 70)
    pts = roc_points(pos, neg)
    area = sum((f2 - f1) * (t1 + t2) / 2 for (f1, t1), (f2, t2) in zip(pts, pts[1:]))
    assert auc(pos, neg) == pytest.approx(area)


def test_tpr_rules_differ_where_they_should():
    neg = list(range(50))  # FPR steps of 2 %
    pos = [49.5, 48.5, 47.5, 10]
    # below 1 % FPR only the threshold above every negative counts: TPR 1/4
    assert tpr_at_fpr(pos, neg, 0.01, "below") == 0.25
    # nearest to 1 %: FPR 0 and FPR 2 % are equally near; the better TPR (2/4) is taken
    assert tpr_at_fpr(pos, neg, 0.01, "nearest") == 0.5


def test_nearest_rmse_finds_the_copy():
    train = torch.randn(1000, 3, 4, 4)
    imgs = torch.stack([train[123] + 0.01, torch.zeros(3, 4, 4)])
    r, i = nearest_rmse(imgs, train, chunk=100)
    assert i[0] == 123 and r[0] == pytest.approx(0.01, abs=1e-5)
    assert r[1] > 0.3


def test_loose_rmse_sees_a_faded_copy_and_not_an_inverted_or_other_image():
    import torch

    from memstab_testbed.metrics import loose_rmse, nearest_rmse

    g = torch.Generator().manual_seed(0)
    targets = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    faded = 0.6 * targets[1:2] + 0.2  # a copy with less contrast and more brightness
    strict, _ = nearest_rmse(faded, targets)
    best, idx = loose_rmse(faded, targets)
    assert float(strict.min()) > 0.15 and float(best[0]) < 1e-3 and int(idx[0]) == 1
    inverted, _ = loose_rmse(-targets[1:2], targets[1:2])  # gain >= 0: an inverted image is no copy
    other, _ = loose_rmse(torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, targets)
    assert float(inverted[0]) > 0.2 and float(other[0]) > 0.2
