"""``samplegemm`` beyond the shared algorithm tests: chunks of every size reusing one worker's buffers,
PyTorch on the LeNet layers it is chosen for, and where ``auto`` picks it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import convgrad
from convgrad import algorithms, blas
from convgrad.algorithms import samplegemm
from convgrad.spec import conv_spec

OPS = ("forward", "grad_input", "grad_weight")


def _operands(spec, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape),
            rng.standard_normal(spec.output_shape))


def _run(op, spec, x, w, dy, name):
    a, b = {"forward": (x, w), "grad_input": (dy, w), "grad_weight": (x, dy)}[op]
    return algorithms.run(op, spec, a, b, name)


@pytest.mark.parametrize("spec", [
    conv_spec((7, 1, 9, 9), (3, 1, 5, 5), padding=2),  # 'same': unpadded flat layout, the margins must stay zero
    conv_spec((7, 2, 9, 8), (3, 2, 3, 3), padding=(1, 0)),  # flat windows, padded and widened
    conv_spec((7, 2, 10), (4, 2, 3), stride=2, padding=1),  # strided windows, padded
    conv_spec((7, 3, 6, 5), (4, 3, 2, 2)),  # flat, unpadded
    conv_spec((7, 2, 9), (2, 2, 3), stride=2),  # strided, unpadded: x read in place
], ids=["same-margins", "flat-padded", "strided-padded", "flat-unpadded", "strided-unpadded"])
@pytest.mark.parametrize("accumulate", [False, True], ids=["stacked-dw", "accumulated-dw"])
def test_chunks_of_every_size_agree_with_direct(monkeypatch, spec, accumulate):
    """Small chunks (1 to 3 elements, the last one shorter) on two workers: each worker's buffers are
    reused for chunks of different sizes, and the padding written once must stay zero. The weight
    gradient both ways: per-sample products summed per chunk, and each added into the sum by BLAS."""
    x, w, dy = _operands(spec)
    per_item = samplegemm.geometry(spec).cols * 8
    monkeypatch.setattr(samplegemm, "ACCUMULATE_FLOPS", 0 if accumulate else float("inf"))
    assert samplegemm._accumulates(spec) == (accumulate and spec.groups == 1 and blas.available())
    try:
        for items in (1, 2, 3):
            monkeypatch.setattr(samplegemm, "CHUNK_BYTES", items * per_item)
            samplegemm._cached_chunks.cache_clear()
            with convgrad.settings(num_threads=2):
                for op in OPS:
                    got = _run(op, spec, x, w, dy, "samplegemm")
                    want = _run(op, spec, x, w, dy, "direct")
                    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=f"{op}, {items} per chunk")
    finally:
        samplegemm._cached_chunks.cache_clear()


@pytest.mark.parametrize("shapes", [((8, 1, 28, 28), (6, 1, 5, 5), 2), ((8, 6, 14, 14), (16, 6, 5, 5), 0)],
                         ids=["lenet-conv1", "lenet-conv2"])
def test_lenet_layers_match_torch_in_float64(shapes):
    torch = pytest.importorskip("torch")
    xs, ws, pad = shapes
    spec = conv_spec(xs, ws, padding=pad)
    x, w, dy = _operands(spec, seed=3)
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, padding=pad)
    ty.backward(torch.tensor(dy))
    want = {"forward": ty.detach().numpy(), "grad_input": tx.grad.numpy(), "grad_weight": tw.grad.numpy()}
    for op in OPS:
        np.testing.assert_allclose(_run(op, spec, x, w, dy, "samplegemm"), want[op], rtol=1e-10, atol=1e-10)


def test_auto_picks_it_for_few_channel_layers_only():
    lenet1 = conv_spec((64, 1, 28, 28), (6, 1, 5, 5), padding=2)
    assert algorithms.choose(lenet1, "forward").name == "samplegemm"
    assert algorithms.choose(lenet1, "grad_weight").name == "samplegemm"
    # a long 1-D layer with many channels: one sample's im2col matrix (37 MB) is beyond the caches
    long_1d = conv_spec((16, 64, 16000), (64, 64, 9), padding=4)
    assert all(algorithms.choose(long_1d, op).name != "samplegemm" for op in OPS)


@st.composite
def same_after_first(draw):
    """Stride-1 configurations whose output keeps the input's sizes along every dim after the first."""
    ndim = draw(st.integers(2, 3))
    size = [draw(st.integers(1, 6)) for _ in range(ndim)]
    kernel = [draw(st.integers(1, 4)) for _ in range(ndim)]
    dilation = [draw(st.integers(1, 2)) for _ in range(ndim)]
    padding = []
    for d in range(ndim):
        k_eff = (kernel[d] - 1) * dilation[d] + 1
        lo = draw(st.integers(0, k_eff + 1))
        # after the first dim: lo + hi = K_eff - 1 (output size = input size); the first dim is free
        hi = k_eff - 1 - lo if d else draw(st.integers(max(0, k_eff - size[0] - lo), k_eff + 1))
        if hi < 0:
            lo, hi = k_eff - 1, 0
        padding.append((lo, hi))
    groups = draw(st.sampled_from([1, 2]))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    return conv_spec((draw(st.integers(1, 3)), cin, *size), (cout, cin // groups, *kernel),
                     dilation=dilation, padding=padding, groups=groups)


@settings(max_examples=40, deadline=None)
@given(spec=same_after_first())
def test_same_convolutions_use_the_unpadded_layout_and_agree_with_direct(spec):
    """The unpadded flat layout (the grid is the output; taps that leave the input along a later dim
    wrap into a neighbouring row and are zeroed): kernels wider than the input, one-sided padding,
    dilation and groups, on two workers with one element per chunk (buffers reused)."""
    assert samplegemm.geometry(spec).halo
    x, w, dy = _operands(spec, seed=sum(spec.input_shape))
    with convgrad.settings(num_threads=2):
        for op in OPS:
            np.testing.assert_allclose(_run(op, spec, x, w, dy, "samplegemm"), _run(op, spec, x, w, dy, "direct"),
                                       rtol=1e-10, atol=1e-10, err_msg=f"{op}, {spec}")


def test_the_unpadded_layout_zeroes_only_the_wrapped_taps():
    """3x3 'same': only the left and right kernel columns wrap; the vertical taps read the zero margins."""
    geo = samplegemm.geometry(conv_spec((2, 4, 6, 5), (3, 4, 3, 3), padding=1))
    assert geo.halo and not geo.widened and geo.length == 30 and geo.front == 6
    assert [(i[3], i[5]) for i in geo.zeros] == [(0, slice(0, 1)), (2, slice(4, 5))]
    assert not samplegemm.geometry(conv_spec((2, 4, 6, 5), (3, 4, 3, 3), padding=(1, 0))).halo  # widened grid
    assert not samplegemm.geometry(conv_spec((2, 4, 6, 5), (3, 4, 3, 3), padding=1, stride=2)).halo


@pytest.mark.parametrize("spec", [
    conv_spec((3, 3, 7, 6), (4, 3, 3, 3), padding=1),  # blocks of 2 rows, the last one shorter
    conv_spec((3, 2, 9, 8), (3, 2, 3, 3), padding=2, dilation=2),
    conv_spec((2, 2, 4, 5, 6), (3, 2, 3, 3, 3), padding=1),  # 3-D: blocks of whole 5x6 planes
    conv_spec((3, 1, 11, 9), (2, 1, 5, 5), padding=[(4, 0), (2, 2)]),  # one row a block, one-sided padding
], ids=["3x3", "dilated", "3d", "rows"])
def test_a_sample_in_blocks_of_output_rows_agrees_with_direct(monkeypatch, spec):
    """A sample whose im2col matrix exceeds the chunk is built and multiplied a block of output rows
    at a time (forward, the input gradient as a forward of dy, the accumulated weight gradient)."""
    x, w, dy = _operands(spec, seed=5)
    monkeypatch.setattr(samplegemm, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(samplegemm, "ACCUMULATE_FLOPS", 0)
    samplegemm._cached_chunks.cache_clear()
    try:
        assert len(samplegemm.chunks_for(spec, 8).blocks) > 1
        assert samplegemm._accumulates(spec) == blas.available()
        for threads in (1, 2):
            with convgrad.settings(num_threads=threads):
                for op in OPS:
                    np.testing.assert_allclose(_run(op, spec, x, w, dy, "samplegemm"), _run(op, spec, x, w, dy, "direct"),
                                               rtol=1e-10, atol=1e-10, err_msg=f"{op}, {threads} threads")
    finally:
        samplegemm._cached_chunks.cache_clear()


def test_a_same_convolution_padded_beyond_its_kernel_takes_col2im():
    """Padding beyond the kernel's extent along the first dim: no flipped forward, the unpadded
    layout's col2im (the wrapped taps of dcol zeroed before they are added back)."""
    spec = conv_spec((3, 2, 5, 6), (3, 2, 3, 3), padding=[(4, 1), (1, 1)])
    assert samplegemm.geometry(spec).halo and samplegemm.flipped(spec) is None
    x, w, dy = _operands(spec, seed=7)
    for threads in (1, 2):
        with convgrad.settings(num_threads=threads):
            np.testing.assert_allclose(_run("grad_input", spec, x, w, dy, "samplegemm"),
                                       _run("grad_input", spec, x, w, dy, "direct"), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layout", ["unaligned", "fortran", "strided"])
def test_weight_gradient_takes_any_dy_and_leaves_the_operands_alone(monkeypatch, layout):
    """The accumulated weight gradient reads dy in place only when BLAS can: an unaligned,
    Fortran-ordered or strided dy takes the stacked products, with the same result."""
    monkeypatch.setattr(samplegemm, "ACCUMULATE_FLOPS", 0)
    spec = conv_spec((4, 3, 7, 6), (4, 3, 3, 3), padding=1)
    x, _, dy = _operands(spec, seed=9)
    if layout == "unaligned":
        raw = np.zeros(dy.nbytes + 1, np.uint8)
        odd = np.frombuffer(raw.data, np.float64, offset=1, count=dy.size).reshape(dy.shape)
        odd[...] = dy
        assert not odd.flags.aligned
    elif layout == "fortran":
        odd = np.asfortranarray(dy)
    else:
        odd = np.repeat(dy, 2, axis=-1)[..., ::2]
    x0, d0 = x.copy(), odd.copy()
    got = _run("grad_weight", spec, x, None, odd, "samplegemm")
    np.testing.assert_allclose(got, _run("grad_weight", spec, x, None, dy, "direct"), rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(odd, d0)
