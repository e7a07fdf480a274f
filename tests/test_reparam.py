"""The backward re-parameterization (convgrad.reparam) against the definitions.

Each gradient computed as the forward convolution its ForwardForm describes -- input dilation,
padding and crop done explicitly here, the convolution by ``direct`` -- equals ``direct``'s own
gradient loop, written from the index formulas, on a sweep of 1-D and 2-D configurations with
strides that leave tails and holes, dilation, groups and padding beyond the kernel.
"""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from convgrad import reparam
from convgrad.algorithms import get_algorithm
from convgrad.spec import conv_spec

DIRECT = get_algorithm("direct")


def _forward(form: reparam.ForwardForm, a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The forward convolution ``form`` describes, of operand ``a`` ``(batch, C, *size)`` by kernel ``k``."""
    nd = len(form.input_size)
    spread = tuple((n - 1) * d + 1 for n, d in zip(form.input_size, form.input_dilation))
    ad = np.zeros(a.shape[:2] + spread)  # input dilation: d-1 zeros between samples
    ad[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in form.input_dilation)] = a
    ad = np.pad(ad, ((0, 0), (0, 0)) + tuple((max(0, lo), max(0, hi)) for lo, hi in zip(form.pad_lo, form.pad_hi)))
    # then negative padding crops the padded operand (a crop can reach into the other side's padding)
    crop = tuple(slice(max(0, -lo), n - max(0, -hi)) for lo, hi, n in zip(form.pad_lo, form.pad_hi, ad.shape[2:]))
    ad = ad[(slice(None), slice(None)) + crop]
    if form.flip_kernel:
        k = np.flip(k, axis=tuple(range(2, 2 + nd)))
    if form.grouping == "feature":
        spec = conv_spec(ad.shape, k.shape, stride=form.stride, dilation=form.dilation, groups=form.groups)
        return DIRECT.forward(ad, np.ascontiguousarray(k), spec)
    # batch groups: output channels of group g read the operand's batch elements of group g
    bg, og = form.batch // form.groups, form.out_per_group
    parts = []
    for g in range(form.groups):
        ag = ad[g * bg:(g + 1) * bg]
        kg = np.ascontiguousarray(k[g * og:(g + 1) * og])
        spec = conv_spec(ag.shape, kg.shape, stride=form.stride, dilation=form.dilation)
        parts.append(DIRECT.forward(ag, kg, spec))  # (bg, og, *K)
    return np.concatenate(parts, axis=1)  # (bg, C_out, *K): row c of group g(o) for output channel o


configs = st.fixed_dictionaries({
    "nd": st.integers(1, 2), "groups": st.integers(1, 3), "cg": st.integers(1, 2), "og": st.integers(1, 2),
    "batch": st.integers(1, 2), "size": st.integers(1, 9), "kernel": st.integers(1, 4), "stride": st.integers(1, 3),
    "dilation": st.integers(1, 3), "lo": st.integers(0, 5), "hi": st.integers(0, 5),
})


def _spec(c):
    nd = c["nd"]
    k_eff = c["dilation"] * (c["kernel"] - 1) + 1
    size = max(c["size"], k_eff - c["lo"] - c["hi"])  # at least one output
    return conv_spec((c["batch"], c["groups"] * c["cg"]) + (size,) * nd,
                     (c["groups"] * c["og"], c["cg"]) + (c["kernel"],) * nd,
                     stride=c["stride"], dilation=c["dilation"], padding=((c["lo"], c["hi"]),) * nd,
                     groups=c["groups"])


def _arrays(spec):
    """Random ``x``, ``w``, ``dy`` for ``spec``."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape),
            rng.standard_normal(spec.output_shape))


@settings(max_examples=100, deadline=None)
@given(configs)
def test_grad_input_is_the_forward_of_its_form(c):
    spec = _spec(c)
    _, w, dy = _arrays(spec)
    form = reparam.grad_input_as_forward(spec)
    # grad_input_kernel already flips; _forward flips again when the form says so: undo one
    k = np.flip(reparam.grad_input_kernel(w, spec), axis=tuple(range(2, 2 + spec.ndim)))
    dx = _forward(form, dy, k)
    assert dx.shape == spec.input_shape and form.output_size == spec.input_size
    np.testing.assert_allclose(dx, DIRECT.grad_input(dy, w, spec), rtol=1e-12, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(configs)
def test_grad_weight_is_the_forward_of_its_form(c):
    spec = _spec(c)
    x, _, dy = _arrays(spec)
    form = reparam.grad_weight_as_forward(spec)
    dwt = _forward(form, x.swapaxes(0, 1), np.ascontiguousarray(dy.swapaxes(0, 1)))  # (C_g, C_out, *K)
    assert form.output_size == spec.kernel_size
    np.testing.assert_allclose(dwt.swapaxes(0, 1), DIRECT.grad_weight(x, dy, spec), rtol=1e-12, atol=1e-12)


def test_the_forms_are_jaxs():
    """REFERENCE.md d2: JAX's jaxpr for H=10, K=3, S=3, P=1, D=2, G=2."""
    spec = conv_spec((1, 2, 10, 10), (4, 1, 3, 3), stride=3, padding=1, dilation=2, groups=2)
    lhs, rhs = reparam.grad_input_as_forward(spec), reparam.grad_weight_as_forward(spec)
    assert (lhs.input_dilation, lhs.dilation, lhs.pad_lo, lhs.pad_hi) == ((3, 3), (2, 2), (3, 3), (4, 4))
    assert lhs.flip_kernel and lhs.grouping == "feature"
    assert (rhs.stride, rhs.dilation, rhs.pad_lo, rhs.pad_hi) == ((2, 2), (3, 3), (1, 1), (0, 0))
    assert not rhs.flip_kernel and rhs.grouping == "batch" and rhs.groups == 2
