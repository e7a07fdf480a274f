"""A channels-last network (``data_format="channels_last"`` on the layers) against PyTorch, and training it.

PyTorch gets the same numbers permuted to its layout (in the test, by explicit axis tuples) and
its activations permuted back to channels last before ``flatten`` -- so both flatten in
``(H, W, C)`` order, as a Keras model does. Weights are stored in PyTorch's layout in both.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convgrad import nn

torch.set_num_threads(1)


def _net(rng):
    cl = dict(data_format="channels_last")
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, rng=rng, dtype=np.float64, **cl),
        nn.BatchNorm2d(6, dtype=np.float64, **cl),
        nn.ReLU(),
        nn.MaxPool2d(2, **cl),
        nn.Conv2d(6, 4, 1, rng=rng, dtype=np.float64, **cl),   # the native 1x1 path
        nn.AvgPool2d(2, **cl),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 5, rng=rng, dtype=np.float64),
    )


def _torch_loss(params, x, target):
    w1, b1, g, beta, w2, b2, wl, bl = params
    h = F.conv2d(x.permute(0, 3, 1, 2), w1, b1, padding=1)
    h = F.batch_norm(h, None, None, g, beta, training=True)
    h = F.max_pool2d(F.relu(h), 2)
    h = F.avg_pool2d(F.conv2d(h, w2, b2), 2)
    logits = F.linear(h.permute(0, 2, 3, 1).flatten(1), wl, bl)
    return F.cross_entropy(logits, target)


def _params(net):
    return [net[0].weight, net[0].bias, net[1].weight, net[1].bias, net[4].weight, net[4].bias, net[7].weight,
            net[7].bias]


def test_a_channels_last_net_matches_torch_and_trains_like_it():
    rng = np.random.default_rng(0)
    net = _net(rng)
    x = rng.standard_normal((4, 8, 8, 3))
    target = rng.integers(0, 5, 4)
    loss_fn = nn.CrossEntropyLoss()
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in _params(net)]
    tx, tt = torch.tensor(x, requires_grad=True), torch.tensor(target)
    opt = nn.SGD(net.parameters(), lr=0.1)  # PyTorch's side by hand: importing torch.optim takes ~30 s here
    for step in range(3):
        opt.zero_grad()
        y = net(x)
        loss, dlogits = loss_fn(y, target)
        dx = net.backward(dlogits)
        for t in (*tparams, tx):
            t.grad = None
        tloss = _torch_loss(tparams, tx, tt)
        tloss.backward()
        assert abs(loss - tloss.item()) < 1e-12
        assert dx.shape == x.shape and np.abs(dx - tx.grad.numpy()).max() < 1e-12
        for p, t in zip(_params(net), tparams):
            assert np.abs(p.grad - t.grad.numpy()).max() < 1e-12
        opt.step()
        with torch.no_grad():
            for t in tparams:
                t -= 0.1 * t.grad
    for p, t in zip(_params(net), tparams):
        assert np.abs(p.value - t.detach().numpy()).max() < 1e-12


def test_layers_print_and_check_their_data_format():
    assert repr(nn.Conv2d(3, 4, 3, data_format="NHWC")).endswith("data_format='NHWC')")
    assert "data_format" not in repr(nn.Conv2d(3, 4, 3))
    assert "data_format='channels_last'" in repr(nn.MaxPool2d(2, data_format="channels_last"))
    with pytest.raises(ValueError, match=r"Conv1d: data_format='NHWC' names 2 spatial dim\(s\), the layer has 1"):
        nn.Conv1d(3, 4, 3, data_format="NHWC")
    with pytest.raises(ValueError, match=r"BatchNorm2d: data_format must be one of"):
        nn.BatchNorm2d(3, data_format="nhwc")
    with pytest.raises(ValueError, match=r"BatchNorm2d: input must have shape \(N, H, W, 3\)"):
        nn.BatchNorm2d(3, data_format="channels_last")(np.ones((2, 3, 4, 4)))


@pytest.mark.parametrize("nd", [1, 3])
def test_conv_transpose_and_pooling_layers_in_channels_last(nd):
    rng = np.random.default_rng(1)
    up = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[nd - 1](2, 3, 3, stride=2, rng=rng,
                                                                              dtype=np.float64, data_format="channels_last")
    x = rng.standard_normal((2, *(4,) * nd, 2))
    want = (1, *(10,) * nd, 3)
    y = up(x, output_size=want[1:-1])
    assert y.shape == (2, *(10,) * nd, 3)
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nd - 1]
    perm, back = (0, nd + 1, *range(1, nd + 1)), (0, *range(2, nd + 2), 1)
    ref = fn(torch.tensor(x).permute(*perm), torch.tensor(up.weight.value), torch.tensor(up.bias.value), stride=2,
             output_padding=1).permute(*back).numpy()
    assert np.abs(y - ref).max() < 1e-12
    pool = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[nd - 1](3, stride=2, padding=1, data_format="channels_last")
    tx = torch.tensor(y, requires_grad=True)
    tp = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1](tx.permute(*perm), 3, 2, 1).permute(*back)
    p = pool(y)
    assert np.abs(p - tp.detach().numpy()).max() == 0
    dy = rng.standard_normal(p.shape)
    tp.backward(torch.tensor(dy))
    assert np.abs(pool.backward(dy) - tx.grad.numpy()).max() < 1e-12


@pytest.mark.parametrize("stride", [1, 2])
def test_a_channels_last_residual_block_and_global_pooling_match_torch(stride):
    rng = np.random.default_rng(2)
    block = nn.BasicBlock(4, 6, stride=stride, rng=0, dtype=np.float64, data_format="channels_last")
    pool = nn.AdaptiveAvgPool2d(1, data_format="channels_last")
    x = rng.standard_normal((2, 6, 6, 4))
    y = pool(block(x))
    dy = rng.standard_normal(y.shape)
    dx = block.backward(pool.backward(dy))
    tx = torch.tensor(x, requires_grad=True)
    p = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in block.state_dict().items() if k.endswith("weight")
         or k.endswith("bias")}

    def bn(h, name):
        return F.batch_norm(h, None, None, p[f"{name}.weight"], p[f"{name}.bias"], training=True)

    h = tx.permute(0, 3, 1, 2)
    main = bn(F.conv2d(F.relu(bn(F.conv2d(h, p["conv1.weight"], stride=stride, padding=1), "bn1")),
                       p["conv2.weight"], padding=1), "bn2")
    short = bn(F.conv2d(h, p["downsample.0.weight"], stride=stride), "downsample.1")
    ty = F.adaptive_avg_pool2d(F.relu(main + short), 1).permute(0, 2, 3, 1)
    ty.backward(torch.tensor(dy))
    assert y.shape == (2, 1, 1, 6) and np.abs(y - ty.detach().numpy()).max() < 1e-12
    assert np.abs(dx - tx.grad.numpy()).max() < 1e-12
    assert np.abs(block.conv1.weight.grad - p["conv1.weight"].grad.numpy()).max() < 1e-12
