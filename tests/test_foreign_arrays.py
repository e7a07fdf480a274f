"""PyTorch tensors, JAX arrays and other DLPack arrays at the boundary: read without a copy, results
in the caller's type (the first array argument's), clear TypeErrors for other devices and dtypes."""

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convgrad
from convgrad import arrays

torch = pytest.importorskip("torch")
F = torch.nn.functional

rng = np.random.default_rng(0)
X = rng.standard_normal((2, 4, 7, 6))
W = rng.standard_normal((6, 2, 3, 2))
B = rng.standard_normal(6)
KW = dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_convgrad_and_a_numpy_convolution_import_neither_torch_nor_jax():
    out = _run("""
        import sys, numpy as np, convgrad
        convgrad.conv_backward(np.ones((1, 1, 3)), np.ones((1, 1, 4)), np.ones((1, 1, 2)))
        print(sorted(m for m in ("torch", "jax", "jaxlib", "array_api_strict") if m in sys.modules))
    """)
    assert out.strip() == "[]"


def test_a_torch_tensor_with_requires_grad_is_detached_and_the_results_are_tensors():
    tx = torch.tensor(X, requires_grad=True)
    tw = torch.tensor(W, requires_grad=True)
    y = convgrad.conv2d(tx, tw, torch.tensor(B), **KW)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float64 and y.device.type == "cpu"
    assert not y.requires_grad
    assert np.array_equal(y.numpy(), convgrad.conv2d(X, W, B, **KW))
    dy = torch.ones(y.shape, dtype=torch.float64)
    grads = convgrad.conv_backward(dy, tx, tw, **KW)
    assert isinstance(grads, convgrad.Gradients) and all(isinstance(g, torch.Tensor) for g in grads)
    ref = convgrad.conv_backward(np.ones(y.shape), X, W, **KW)
    assert all(np.array_equal(g.numpy(), r) for g, r in zip(grads, ref))
    assert tx.grad is None and tw.grad is None  # nothing of torch's autograd touched
    # and the values are PyTorch's own
    F.conv2d(F.pad(tx, [0, 0, 1, 1]), tw, None, KW["stride"], 0, KW["dilation"], KW["groups"]).backward(dy)
    assert np.abs(grads.input.numpy() - tx.grad.numpy()).max() < 1e-12
    assert np.abs(grads.weight.numpy() - tw.grad.numpy()).max() < 1e-12


def test_float32_tensors_give_float32_tensors_for_every_function():
    tx, tw = torch.tensor(X, dtype=torch.float32), torch.tensor(W, dtype=torch.float32)
    y = convgrad.conv(tx, tw, **KW)
    assert y.dtype == torch.float32
    dy = torch.ones(y.shape)
    assert convgrad.conv2d_input(tuple(tx.shape), tw, dy, **KW).dtype == torch.float32
    assert convgrad.conv2d_weight(tx, tuple(tw.shape), dy, **KW).dtype == torch.float32
    wt = torch.tensor(rng.standard_normal((4, 3, 3, 3)), dtype=torch.float32)
    yt = convgrad.conv_transpose(tx, wt, stride=2, groups=2)
    assert isinstance(yt, torch.Tensor) and yt.dtype == torch.float32
    gt = convgrad.conv_transpose_backward(torch.ones(yt.shape), tx, wt, stride=2, groups=2)
    assert all(isinstance(g, torch.Tensor) and g.dtype == torch.float32 for g in gt)


@pytest.mark.parametrize("make", [
    lambda t: t.detach().requires_grad_(True),
    lambda t: t.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2),  # non-contiguous strides
], ids=["requires_grad", "strided"])
def test_a_cpu_tensor_is_read_without_a_copy(make):
    t = make(torch.tensor(X))
    a = arrays.to_numpy(t, "conv", "input")
    assert isinstance(a, np.ndarray) and a.ctypes.data == t.data_ptr() and a.strides == tuple(8 * s for s in t.stride())
    assert np.array_equal(a, X)


def test_lazily_conjugated_and_complex_tensors_give_pytorchs_values():
    xc = torch.tensor(X + 1j * X[::-1].copy())
    wc = torch.tensor(W - 0.5j * W)
    y = convgrad.conv2d(xc.conj(), wc, **KW)  # conj() is a lazy view in PyTorch: resolved, not ignored
    assert y.dtype == torch.complex128
    assert np.array_equal(y.numpy(), convgrad.conv2d(np.conj(X + 1j * X[::-1]), W - 0.5j * W, **KW))
    leaf_x, leaf_w = xc.clone().requires_grad_(True), wc.clone().requires_grad_(True)
    ty = F.conv2d(F.pad(leaf_x, [0, 0, 1, 1]), leaf_w, None, KW["stride"], 0, KW["dilation"], KW["groups"])
    g = torch.tensor(rng.standard_normal(ty.shape) + 1j * rng.standard_normal(ty.shape))
    ty.backward(g)
    grads = convgrad.conv_backward(g, leaf_x, leaf_w, **KW)
    assert np.abs((grads.input - leaf_x.grad).numpy()).max() < 1e-12
    assert np.abs((grads.weight - leaf_w.grad).numpy()).max() < 1e-12


def test_the_first_array_argument_decides_the_result_type():
    tw = torch.tensor(W)
    assert isinstance(convgrad.conv(X, tw, **KW), np.ndarray)  # the input is NumPy
    assert isinstance(convgrad.conv(torch.tensor(X), W, B, **KW), torch.Tensor)
    assert isinstance(convgrad.conv(X.tolist(), tw, **KW), torch.Tensor)  # a list is not an array type
    dy = np.ones((2, 6, 4, 4))
    assert isinstance(convgrad.conv_backward(dy, torch.tensor(X), tw, **KW).weight, np.ndarray)  # grad_output first
    assert isinstance(convgrad.conv2d_input(X.shape, tw, dy, **KW), torch.Tensor)  # weight first


def test_tensors_on_another_device_or_of_a_dtype_numpy_lacks_are_clear_type_errors():
    meta = torch.empty(X.shape, device="meta")
    with pytest.raises(TypeError, match=r"conv2d: input is a torch.Tensor on device 'meta'.*input\.cpu\(\)"):
        convgrad.conv2d(meta, W, **KW)
    with pytest.raises(TypeError, match=r"conv_backward: weight is a torch.Tensor of dtype torch.bfloat16.*float32"):
        convgrad.conv_backward(np.ones((2, 6, 4, 4)), X, torch.tensor(W, dtype=torch.bfloat16), **KW)

    class OnCuda:  # what a CuPy array or a CUDA tensor says through DLPack
        device = "cuda:0"

        def __dlpack__(self, **kwargs):
            raise AssertionError("never read")

        def __dlpack_device__(self):
            return (2, 0)

    with pytest.raises(TypeError, match=r"conv: bias is a .*OnCuda on device 'cuda:0', not the CPU.*np.asarray"):
        convgrad.conv(X, W, OnCuda(), **KW)
    with pytest.raises(TypeError, match=r"conv: input must be a numeric array, got dtype object \(object\).*np.asarray"):
        convgrad.conv(object(), W, **KW)


def test_array_api_strict_arrays_are_read_through_dlpack_and_returned_on_their_device():
    xp = pytest.importorskip("array_api_strict")
    for device in (xp.Device("CPU_DEVICE"), xp.Device("device1")):
        x = xp.asarray(X, device=device)
        y = convgrad.conv(x, xp.asarray(W, device=device), **KW)
        assert type(y) is type(x) and y.device == device
        assert np.array_equal(np.from_dlpack(y), convgrad.conv(X, W, **KW))
        grads = convgrad.conv_backward(xp.ones(y.shape, dtype=xp.float64, device=device), x, xp.asarray(W), **KW)
        assert all(type(g) is type(x) for g in grads)


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (the test extra has it)")
def test_jax_arrays_in_jax_arrays_out_read_without_a_copy_against_jax_itself():
    """In a subprocess (jax_enable_x64 is process-wide): float32 arrays stay float32 and are read in place;
    complex128 forward and gradients equal JAX's own (its cotangents are the conjugates of PyTorch's)."""
    out = _run("""
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp, numpy as np, convgrad
        from convgrad import arrays
        rng = np.random.default_rng(0)
        x32, w32 = jnp.asarray(rng.standard_normal((2, 4, 7)), jnp.float32), jnp.asarray(rng.standard_normal((6, 2, 3)), jnp.float32)
        in_place = arrays.to_numpy(x32, "conv", "input").ctypes.data == x32.unsafe_buffer_pointer()
        y32 = convgrad.conv(x32, w32, groups=2)
        g32 = convgrad.conv_backward(jnp.ones(y32.shape, jnp.float32), x32, w32, groups=2)
        same32 = np.array_equal(np.asarray(y32), convgrad.conv(np.asarray(x32), np.asarray(w32), groups=2))
        print(in_place, type(y32).__name__, y32.dtype, same32, {(type(g).__name__, str(g.dtype)) for g in g32})
        x = jnp.asarray(rng.standard_normal((2, 4, 7)) + 1j * rng.standard_normal((2, 4, 7)))
        w = jnp.asarray(rng.standard_normal((6, 2, 3)))
        f = lambda x, w: jax.lax.conv_general_dilated(x, w, (2,), [(2, 0)], feature_group_count=2)
        y, pullback = jax.vjp(f, x, w.astype(jnp.complex128))
        ours = convgrad.conv(x, w, stride=2, padding="causal", groups=2)
        g = jnp.asarray(rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
        gx, gw = pullback(g.conj())
        grads = convgrad.conv_backward(g, x, w, stride=2, padding="causal", groups=2)
        print(type(ours).__name__, ours.dtype, type(grads.input).__name__,
              float(abs(ours - y).max()) < 1e-12, float(abs(grads.input - gx.conj()).max()) < 1e-12,
              float(abs(grads.weight - gw.conj()).max()) < 1e-12)
    """)
    first, second = out.splitlines()
    assert first == "True ArrayImpl float32 True {('ArrayImpl', 'float32')}"
    assert second.split() == ["ArrayImpl", "complex128", "ArrayImpl", "True", "True", "True"]


@pytest.mark.parametrize("module", ["convgrad.arrays", "convgrad.complex", "convgrad.bias"])
def test_examples_in_the_boundary_modules(module):
    import doctest

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
