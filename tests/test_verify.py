"""``convgrad.verify`` on user-style code: every planted mistake found, shrunk and named; correct code passes.

The corpus (tests/verify_impls/, checked against convgrad by tests/test_verify_corpus.py) is code as
learners write it -- loops, im2col, NHWC, layer classes, CS231n adapters -- not copies of the mutants.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import convgrad
from convgrad.verify import BUGS, expected
from convgrad.verify import geometry as geo
from convgrad.verify.cases import OPS, arrays, directed_cases, random_case

CORPUS = pathlib.Path(__file__).parent / "verify_impls"
FILES = sorted(p for p in CORPUS.glob("*.py") if not p.name.startswith("_"))


def _load(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"verify_impl_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(module, time_limit=12.0):
    return convgrad.verify(getattr(module, module.ENTRY), module.OP, dims=module.DIMS,
                           channels_last=module.CHANNELS_LAST, per_dim=module.PER_DIM,
                           padding_forms=module.PADDING_FORMS, time_limit=time_limit)


def _minimal_is_small(report, module):
    m = report.minimal
    shape_x, shape_w = m["input_shape"], m["weight_shape"]
    ch_axis = -1 if module.CHANNELS_LAST else 1
    spatial = shape_x[1:-1] if module.CHANNELS_LAST else shape_x[2:]
    assert shape_x[0] <= 2, m
    assert shape_x[ch_axis] <= 4 and max(shape_w) <= 9, m
    assert max(spatial) <= 9, m


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("ok_")], ids=lambda p: p.stem)
def test_correct_code_passes(path):
    module = _load(path)
    report = _run(module, time_limit=8.0)
    assert report.ok, report.text()
    assert report.not_visited == [], report.text()   # every directed region was run
    assert report.configs_checked >= 10
    assert report.diagnosis == [] and report.minimal is None


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("bug_")], ids=lambda p: p.stem)
def test_planted_mistake_is_found_shrunk_and_named(path):
    module = _load(path)
    start = time.perf_counter()
    report = _run(module)
    assert time.perf_counter() - start < 20
    assert not report.ok
    wanted = (module.EXPECT,) if isinstance(module.EXPECT, str) else tuple(module.EXPECT)
    assert report.diagnosis, report.text()
    assert report.diagnosis[0] in wanted, report.text()
    _minimal_is_small(report, module)
    text = report.text()
    assert report.diagnosis[0] in text and "Fix:" in text


@pytest.mark.parametrize("path", [p for p in FILES if p.stem.startswith("path_")], ids=lambda p: p.stem)
def test_broken_code_gets_a_clear_report_within_the_time_limit(path):
    module = _load(path)
    start = time.perf_counter()
    report = _run(module, time_limit=6.0)
    assert time.perf_counter() - start < 9.0
    assert not report.ok
    kind = {"error": "exception", "shape": "shape", "type": "type", "timeout": "timeout", "nan": "nonfinite"}
    assert report.finding.kind == kind[module.EXPECT], report.text()
    text = report.text()
    if module.EXPECT == "error":
        assert report.exception and path.name in report.exception  # the user's own file and line
    if module.EXPECT == "timeout":
        assert "did not return" in text


def test_every_id_is_covered_by_the_corpus():
    expected_ids = set()
    for path in FILES:
        e = _load(path).EXPECT
        if isinstance(e, str):
            expected_ids.add(e)
        elif e:
            expected_ids.add(e[0])
    assert set(BUGS) <= expected_ids, set(BUGS) - expected_ids


def test_every_op_dims_and_layout_has_correct_code():
    seen = {(m.OP, m.DIMS, m.CHANNELS_LAST) for m in map(_load, FILES) if m.EXPECT is None}
    assert {op for op, _, _ in seen} == set(OPS)
    assert {d for _, d, _ in seen} == {1, 2, 3}
    assert {cl for _, _, cl in seen} == {False, True}


# ------------------------------------------------------------------------------------------------
# the machinery: regions, the tap-loop engine of the mutants, shrinking, arguments
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["forward", "backward", "transposed_forward", "transposed_backward"])
def test_directed_regions_visit_the_risky_places(op):
    cases = directed_cases(op, 2, ("stride", "padding", "dilation", "groups", "output_padding"), True,
                           ("int", "same"))
    names = {n for n, _ in cases}
    assert {"plain", "stride_overlap", "holes", "no_overlap", "dilation", "groups", "per_dim"} <= names
    specs = [c.spec() for _, c in cases]
    if not op.startswith("transposed"):
        tails = [(s.unread_tail, s.padding) for s in specs if any(s.unread_tail)]
        assert any(any(t > p[1] for t, p in zip(tail, pads)) for tail, pads in tails)    # beyond the padding
        assert any(all(t <= p[1] for t, p in zip(tail, pads)) for tail, pads in tails)   # inside it
        assert any(any(s.stride[d] > s.dilation[d] * (s.kernel_size[d] - 1) + 1 for d in range(2)) for s in specs)
    else:
        assert "output_padding" in names
    assert any(c.batch > 1 for _, c in cases) and any(c.batch == 1 for _, c in cases)
    assert any(c.in_channels == c.out_channels for _, c in cases)
    assert any(c.in_channels != c.out_channels for _, c in cases)
    assert any(len(set(c.kernel)) > 1 for _, c in cases) and any(len(set(c.size)) > 1 for _, c in cases)
    data = arrays(cases[1][1], 0, np.float64)
    assert not np.all(data["dy"] == 1) and not np.allclose(data["w"], np.flip(data["w"], axis=(2, 3)))


@pytest.mark.parametrize("op", ["forward", "backward", "transposed_forward", "transposed_backward"])
@pytest.mark.parametrize("ndim", [1, 2, 3])
def test_mutant_engine_equals_convgrad(op, ndim):
    """The tap-loop primitives the mutants are built on are exact when no knob is turned."""
    from convgrad.verify.compare import reference
    from convgrad.verify.mutants import assemble
    rng = np.random.default_rng(ndim)
    for _ in range(6):
        case = random_case(rng, op, ndim, ("stride", "padding", "dilation", "groups", "output_padding"), True, ("int",))
        data = arrays(case, 1, np.float64)
        want, got = reference(case, data), assemble(case, data)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], atol=1e-10, err_msg=f"{case} {key}")


def test_coverage_counts_overlapping_windows():
    case = directed_cases("backward", 1, ("stride",), False, ("int",))
    g = geo.Geometry(H=(7,), K=(3,), Ho=(3,), step=(2,), spacing=(1,), lo=(0,), hi=(0,), groups=1)
    assert geo.coverage(g).tolist() == [1, 1, 2, 1, 2, 1, 1]
    assert case


def test_bad_arguments_are_clear_errors():
    def fn(x, w, stride=1):
        return x

    with pytest.raises(ValueError, match="op must be one of"):
        convgrad.verify(fn, "fwd")
    with pytest.raises(ValueError, match="dims must be 1, 2 or 3"):
        convgrad.verify(fn, "forward", dims=4)
    with pytest.raises(ValueError, match="dtype"):
        convgrad.verify(fn, "forward", dtype="float16")
    with pytest.raises(ValueError, match="time_limit"):
        convgrad.verify(fn, "forward", time_limit=0)
    with pytest.raises(ValueError, match="padding_forms"):
        convgrad.verify(fn, "forward", padding_forms=("full",))
    with pytest.raises(TypeError, match="must be a callable"):
        convgrad.verify(3, "forward")
    with pytest.raises(TypeError, match="3 positional arrays"):
        convgrad.verify(fn, "backward")
    with pytest.raises(TypeError, match="required parameters"):
        convgrad.verify(lambda x, w, b, extra: x, "forward")


def test_report_api_and_the_ready_to_paste_call(tmp_path):
    def conv1d(x, w, stride=1):          # ignores the stride in its slices
        k = w.shape[2]
        ho = (x.shape[2] - k) // stride + 1
        return sum(np.einsum("nci,fc->nfi", x[:, :, t:t + ho], w[:, :, t]) for t in range(k))

    report = convgrad.verify(conv1d, "forward", dims=1)
    assert not report.ok and report.quantity == "output"
    assert set(report.minimal) == {"input_shape", "weight_shape", "stride"} and report.minimal["stride"] > 1
    data = report.to_dict()
    assert json.loads(json.dumps(data))["minimal"]["stride"] == report.minimal["stride"]
    assert data["wrong"] >= 1 and data["worst"]["expected"] != data["worst"]["got"]
    # the snippet runs and reproduces the failure
    scope = {"conv1d": conv1d}
    assert "import conv1d" not in report.snippet()   # a nested function cannot be imported
    with pytest.raises(AssertionError):   # its last line compares and fails, as the report says
        exec(report.snippet(), scope)
    assert scope["got"].shape != scope["want"].shape or not np.allclose(scope["got"], scope["want"])
    pytest.importorskip("matplotlib")
    bundle = report._repr_mimebundle_()
    assert "FAIL" in bundle["text/plain"] and "<pre" in bundle["text/html"] and "<script" not in bundle["text/html"]
    assert "image/png" in bundle and "data:image/png;base64," in bundle["text/html"]
    out = report.figure(tmp_path / "wrong.png")
    assert pathlib.Path(out).stat().st_size > 1000


def test_inputs_are_never_modified_and_channels_last_round_trips():
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3))   # NHWC
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 4))   # HWIO
    before = (x.copy(), w.copy())
    y = expected("forward", x, w, channels_last=True, stride=2)
    ref = convgrad.conv2d(np.moveaxis(x, -1, 1), np.transpose(w, (3, 2, 0, 1)), stride=2)
    np.testing.assert_allclose(y, np.moveaxis(ref, 1, -1), atol=1e-12)
    assert np.array_equal(x, before[0]) and np.array_equal(w, before[1])


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------


def _cli(*args, capsys=None):
    """Run ``convgrad verify ARGS`` in this process: (exit code, stdout, stderr)."""
    from convgrad.cli import main
    try:
        code = main(["verify", *args])
    except SystemExit as exc:   # argparse's own usage errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_in_a_real_process():
    bug = next(p for p in FILES if p.stem == "bug_stride_cs231n_backward")
    result = subprocess.run([sys.executable, "-m", "convgrad", "verify", f"{bug}:{_load(bug).ENTRY}", "--op", "backward"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "diagnosis (most likely first): stride" in result.stdout
    assert result.stderr == ""   # no progress frames when stderr is not a terminal


def test_cli_exit_codes(tmp_path, capsys):
    ok = next(p for p in FILES if p.stem == "ok_im2col_backward_2d")
    bug = next(p for p in FILES if p.stem == "bug_stride_cs231n_backward")
    code, out, err = _cli(f"{ok}:{_load(ok).ENTRY}", "--op", "backward", "--time-limit", "4", capsys=capsys)
    assert code == 0, err
    assert "OK" in out
    code, out, err = _cli(f"{bug}:{_load(bug).ENTRY}", "--op", "backward", "--json", capsys=capsys)
    assert code == 1
    assert json.loads(out)["diagnosis"][0]["id"] == "stride"
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\ndef f(x, w):\n    return 1 +\n")
    for args, message in [
        ((f"{tmp_path}/missing.py:f", "--op", "forward"), "no such file"),
        ((f"{ok}:nothing_here", "--op", "backward"), "has no function 'nothing_here'"),
        ((f"{ok}", "--op", "backward"), "expected FILE.py:FUNCTION"),
        ((f"{broken}:f", "--op", "forward"), "failed to import at line 3"),
        ((f"{ok}:{_load(ok).ENTRY}", "--op", "backward", "--padding", "full"), "--padding"),
    ]:
        code, out, err = _cli(*args, capsys=capsys)
        assert code == 2, (args, out, err)
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(message, err), err
    code, out, err = _cli(f"{ok}:x", "--op", "sideways", capsys=capsys)
    assert code == 2 and "Traceback" not in err and "--op" in err


# ------------------------------------------------------------------------------------------------
# no false alarm: convgrad's own functions, wrapped as a user would, in every op, rank, layout and form
# ------------------------------------------------------------------------------------------------


def _wrapped(op: str, channels_last: bool):
    """convgrad's public functions behind the user-code calling conventions verify uses."""
    def act_in(a):    # (N, *S, C) -> (N, C, *S)
        return np.moveaxis(a, -1, 1) if channels_last else a

    def act_out(a):
        return np.moveaxis(a, 1, -1) if channels_last else a

    def w_in(a):      # (*K, I, O) -> (O, I, *K)
        return np.transpose(a, (a.ndim - 1, a.ndim - 2, *range(a.ndim - 2))) if channels_last else a

    def w_out(a):
        return np.transpose(a, (*range(2, a.ndim), 1, 0)) if channels_last else a

    if op == "forward":
        def fn(x, w, b, stride=1, padding=0, dilation=1, groups=1):
            return act_out(convgrad.conv(act_in(x), w_in(w), b, stride, padding, dilation, groups, algorithm="gemm"))
    elif op == "backward":
        def fn(dy, x, w, stride=1, padding=0, dilation=1, groups=1):
            g = convgrad.conv_backward(act_in(dy), act_in(x), w_in(w), stride, padding, dilation, groups)
            return act_out(g.input), w_out(g.weight), g.bias
    elif op == "transposed_forward":
        def fn(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
            return act_out(convgrad.conv_transpose(act_in(x), w_in(w), b, stride, padding, output_padding, groups,
                                                   dilation))
    else:
        def fn(dy, x, w, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
            g = convgrad.conv_transpose_backward(act_in(dy), act_in(x), w_in(w), stride, padding, output_padding,
                                                 groups, dilation)
            return act_out(g.input), w_out(g.weight)
    return fn


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("channels_last,per_dim,dtype", [(False, False, "float64"), (True, True, "float64"),
                                                         (False, True, "float32")])
def test_no_false_alarm_on_exact_code(op, dims, channels_last, per_dim, dtype):
    forms = ("int",) if op.startswith("transposed") else ("int", "same", "valid")
    report = convgrad.verify(_wrapped(op, channels_last), op, dims=dims, channels_last=channels_last,
                             per_dim=per_dim, dtype=dtype, padding_forms=forms, time_limit=3.0, seed=dims)
    assert report.ok, report.text()
    assert report.not_visited == []


def test_a_backward_checked_as_a_forward_gets_a_hint():
    def conv_backward(dout, x, w, stride=1):
        _, _, kh, kw = w.shape
        return np.zeros_like(x), np.zeros_like(w), np.zeros(w.shape[0])

    report = convgrad.verify(conv_backward, "forward", time_limit=3)
    assert not report.ok and "op='backward'" in report.text()


def test_float32_arithmetic_is_named_as_such():
    def conv_in_float32(x, w, stride=1):
        return convgrad.conv1d(x.astype(np.float32), w.astype(np.float32), stride=stride).astype(np.float64)

    report = convgrad.verify(conv_in_float32, "forward", dims=1, time_limit=5)
    assert not report.ok and "float32" in report.text() and report.diagnosis == []
    assert convgrad.verify(conv_in_float32, "forward", dims=1, dtype="float32", time_limit=3).ok


def test_a_mistake_that_is_not_per_axis_is_not_called_per_axis():
    """Per-dim parameters that differ do not by themselves make a bug `per_axis` (a ceil output size here)."""
    def ceil_forward(x, w, stride=(1, 1)):
        y = expected("forward", x, w, stride=tuple(stride))
        extra = [(x.shape[2 + d] - w.shape[2 + d]) % stride[d] != 0 for d in range(2)]
        return np.pad(y, ((0, 0), (0, 0), (0, int(extra[0])), (0, int(extra[1]))))   # one zero row/column too many

    report = convgrad.verify(ceil_forward, "forward", per_dim=True, time_limit=8)
    assert not report.ok and report.finding.kind == "shape"
    assert "per_axis" not in report.diagnosis


def test_the_reproduction_draws_the_numbers_of_the_report():
    def conv1d(x, w, stride=1):          # ignores the stride
        k = w.shape[2]
        ho = (x.shape[2] - k) // stride + 1
        return sum(np.einsum("nci,fc->nfi", x[:, :, t:t + ho], w[:, :, t]) for t in range(k))

    for channels_last in (False, True):
        fn = conv1d if not channels_last else (
            lambda x, w, stride=1: np.moveaxis(conv1d(np.moveaxis(x, -1, 1), np.transpose(w, (2, 1, 0)), stride), 1, -1))
        report = convgrad.verify(fn, "forward", dims=1, channels_last=channels_last, seed=7, time_limit=5)
        scope = {"conv1d": fn, "fn": fn}
        with pytest.raises(AssertionError):
            exec(report.snippet(), scope)
        idx, want, got = report.finding.worst()
        user_idx = (idx[0], *idx[2:], idx[1]) if channels_last else idx
        assert scope["want"][user_idx] == pytest.approx(want, abs=1e-12)
        assert scope["got"][user_idx] == pytest.approx(got, abs=1e-12)


def test_argument_types_are_checked_and_numpy_scalars_accepted():
    def conv1d(x, w):
        return expected("forward", x, w)

    with pytest.raises(TypeError, match="channels_last must be True or False"):
        convgrad.verify(conv1d, "forward", dims=1, channels_last="no")
    with pytest.raises(TypeError, match="per_dim must be True or False"):
        convgrad.verify(conv1d, "forward", dims=1, per_dim="false")
    with pytest.raises(TypeError, match="progress must be a callable"):
        convgrad.verify(conv1d, "forward", dims=1, progress=5)
    assert convgrad.verify(conv1d, "forward", dims=1, dtype=np.float64, time_limit=np.float32(2)).ok


def test_cli_json_stays_json_when_the_users_code_prints(tmp_path, capsys):
    noisy = tmp_path / "noisy.py"
    noisy.write_text("import numpy as np\nfrom convgrad.verify import expected\nprint('loading')\n"
                     "def f(x, w, stride=1):\n    print('called')\n    return expected('forward', x, w, stride=stride)\n"
                     "class Layer:\n    pass\n")
    code, out, err = _cli(f"{noisy}:f", "--op", "forward", "--dims", "1", "--json", "--time-limit", "2", capsys=capsys)
    assert code == 0 and json.loads(out)["ok"] is True and "called" in err
    code, out, err = _cli(f"{noisy}:Layer", "--op", "forward", capsys=capsys)
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(errors) == 1 and "is a class" in errors[0] and out == ""
