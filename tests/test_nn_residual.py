"""BasicBlock and AdaptiveAvgPool2d against the same blocks written in torch.nn (float64, 1e-10)."""

from __future__ import annotations

import numpy as np
import pytest

from _nn_torch import compare_passes
from convgrad import nn

torch = pytest.importorskip("torch")


def TorchBasicBlock(cin, cout, stride):
    """torchvision's BasicBlock, written out in the training-step benchmark (torchvision is not a test dependency)."""
    from convgrad.bench.train_step import torch_vocabulary

    return torch_vocabulary().BasicBlock(cin, cout, stride)


@pytest.mark.parametrize("cin,cout,stride", [(4, 4, 1), (4, 8, 2), (3, 6, 1), (6, 6, 2)])
@pytest.mark.parametrize("train", [True, False])
def test_basic_block_matches_torch(cin, cout, stride, train):
    torch.manual_seed(0)
    tb = TorchBasicBlock(cin, cout, stride).double()
    block = nn.BasicBlock(cin, cout, stride, rng=0, dtype=np.float64)
    assert [k for k, _ in block.named_parameters()] == [k for k, _ in tb.named_parameters()]
    assert set(block.state_dict()) == set(tb.state_dict())
    x = np.random.default_rng(1).standard_normal((3, cin, 7, 6))
    assert compare_passes(block, tb, x, train=train) > 3


@pytest.mark.parametrize("size,out", [((6, 4), 1), ((6, 4), (3, 2)), ((5, 5), 5)])
def test_adaptive_avg_pool_matches_torch(size, out):
    x = np.random.default_rng(2).standard_normal((2, 3, *size))
    assert compare_passes(nn.AdaptiveAvgPool2d(out), torch.nn.AdaptiveAvgPool2d(out).double(), x) >= 2


def test_adaptive_avg_pool_refuses_unequal_blocks():
    with pytest.raises(ValueError, match="must divide"):
        nn.AdaptiveAvgPool2d(4)(np.zeros((1, 1, 6, 6)))
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(0)
