"""Run the calls `convgrad explain` prints, for the frameworks named, and compare with conv_backward.

    python scripts/check_framework_snippets.py jax,tensorflow      # in an environment with JAX and TF
    python scripts/check_framework_snippets.py convgrad,pytorch    # (the tests run these two)

It also runs the double backward and JVP snippets (convgrad.explain.higher; convgrad, PyTorch, JAX).

The tests cannot install JAX and TensorFlow; this script is how their snippets were checked
(JAX 0.10.2 and TensorFlow 2.21 CPU: all agree on the test grid and 40 random configurations).
"""
import os
import random
import sys
from pathlib import Path
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import numpy as np
import convgrad
from convgrad.explain import explain
from convgrad.explain.equivalents import equivalents
from _explain import explanation_of, grid_and_random

frameworks = [f.replace("pytorch", "pytorch") for f in sys.argv[1].split(",")]
cases = grid_and_random(40, seed=5)
bad = ok = 0
for case in cases:
    ex = explanation_of(case)
    x, w, _ = case.arrays(0)
    y, _ = case.run(x, w, None)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    _, g = case.run(x, w, None, dy)
    ref = {"output": y, "grad_input": g.input, "grad_weight": g.weight, "grad_bias": g.bias}
    eq = equivalents(ex)
    for q, entry in eq.items():
        for fw, code in entry["calls"].items():
            if not any(fw.startswith(f) for f in frameworks) or code.startswith("#"):
                continue
            env = {"x": x, "w": w, "dy": dy, "np": np}
            try:
                exec(code, env)
            except Exception as e:
                bad += 1
                print("ERROR", case, q, fw, type(e).__name__, str(e)[:300]); print(code); continue
            names = {"output": "y", "grad_input": "dx", "grad_weight": "dw", "grad_bias": "db"}
            got = np.asarray(env[names[q]])
            want = ref[q] if q != "grad_bias" else dy.sum(axis=(0, *range(2, dy.ndim)))
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-8):
                bad += 1
                print("MISMATCH", case, q, fw, got.shape, want.shape); print(code)
            else:
                ok += 1
            # the tape snippet also yields dw
            if fw == "tensorflow" and q == "output":
                for nm, key in (("dx", "grad_input"), ("dw", "grad_weight")):
                    if not np.allclose(np.asarray(env[nm]), ref[key], atol=1e-8):
                        bad += 1; print("MISMATCH tf transposed", nm, case); print(code)
                    else:
                        ok += 1
            if fw == "tensorflow" and q == "grad_input":
                gw = np.asarray(env["dw"]); 
                if not np.allclose(gw, ref["grad_weight"], atol=1e-8):
                    bad += 1; print("MISMATCH tf dw", case)
                else:
                    ok += 1

# the double backward and JVP snippets (convgrad.explain.higher), against conv_double_backward / conv_jvp
from convgrad.explain.higher import higher_order

for case in cases:
    fn = "conv_transpose" if case.transposed else "conv"
    x, w, _ = case.arrays(0)
    y, _ = case.run(x, w, None)
    rng = np.random.default_rng(2)
    dy, ggx, ggw, ggb, b = (rng.standard_normal(s) for s in (y.shape, x.shape, w.shape, (case.out_channels,),
                                                               (case.out_channels,)))
    g = getattr(convgrad, f"{fn}_double_backward")(ggx, ggw, ggb, dy, x, w, **case.kwargs())
    yy, ty = getattr(convgrad, f"{fn}_jvp")(x, w, b, ggx, ggw, ggb, **case.kwargs())
    ref = {"gdy": g.grad_output, "gx": g.input, "gw": g.weight, "y": yy, "ty": ty}
    for q, entry in higher_order(explanation_of(case)).items():
        for fw, code in entry["calls"].items():
            if not any(fw.startswith(f) for f in frameworks) or code.startswith("#"):
                continue
            env = {"x": x, "w": w, "dy": dy, "ggx": ggx, "ggw": ggw, "ggb": ggb, "b": b, "tx": ggx, "tw": ggw, "tb": ggb}
            try:
                exec(code, env)
            except Exception as e:
                bad += 1
                print("ERROR", case, q, fw, type(e).__name__, str(e)[:300]); print(code); continue
            for name in (n for n in ref if n in env):
                got = np.asarray(env[name].detach() if hasattr(env[name], "detach") else env[name])
                if got.shape != ref[name].shape or not np.allclose(got, ref[name], atol=1e-8):
                    bad += 1
                    print("MISMATCH", case, q, fw, name); print(code)
                else:
                    ok += 1
print("ok", ok, "bad", bad)
sys.exit(1 if bad else 0)
