"""The training-step benchmark compares like with like: same network, same weights, same step.

(Never timed: the benchmark itself is ``python -m convgrad.bench.train_step``.)
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from convgrad.bench import train_step  # noqa: E402


@pytest.mark.parametrize("net", train_step.NETS)
def test_both_libraries_take_the_same_step(net):
    x, y = train_step.batch(net, "float64", n=6)
    model, step = train_step.build(net, "convgrad", "float64")
    tmodel, tstep = train_step.build(net, "torch", "float64")
    losses = [(step(x, y), tstep(torch.from_numpy(x), torch.from_numpy(y))) for _ in range(2)]
    for ours, theirs in losses:
        assert ours == pytest.approx(theirs, rel=1e-10)
    state = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    for name, value in model.state_dict().items():
        np.testing.assert_allclose(value, state[name], rtol=1e-8, atol=1e-10, err_msg=name)


def test_unknown_network_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        train_step.main(["--nets", "alexnet"])
    assert exc.value.code == 2 and "alexnet" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--no-torch"], "cannot run with --no-torch"),
    (["--layers", "a"], "--layers, --input and --weight are for layers"),
    (["--nets", "alexnet"], "--nets: expected names"),
    (["--dtypes", "float16"], "--dtypes"),
    (["--repeats", "3"], "at least 7"),
])
def test_bench_train_mistakes_are_one_line(argv, message, capsys):
    from convgrad.cli import main

    assert main(["bench", "--train", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
