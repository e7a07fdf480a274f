"""``convgrad.set_memory_reuse``: freed memory kept mapped, so a step's fresh arrays cost no page faults."""

import platform
import subprocess
import sys
import textwrap

import pytest

import convgrad

glibc = pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                           reason="mallopt is glibc's (elsewhere set_memory_reuse does nothing and says so)")


def _thp_always() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


counts_faults = pytest.mark.skipif(_thp_always(), reason="transparent huge pages 'always': 2 MiB arrays fault once")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@glibc
@counts_faults
def test_reuse_removes_the_page_faults_of_fresh_arrays():
    """A 2 MiB array made, written and freed 20 times: 512 page faults each time without reuse, none with."""
    got = _run("""
        import resource, numpy as np, convgrad
        def faults():
            np.ones(2**19, np.float32)  # the first time: new pages whatever the setting
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(20):
                a = np.empty(2**19, np.float32)  # 2 MiB: 4 KiB pages (NumPy asks for huge pages from 4 MiB)
                a[...] = 1
                del a
            return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 20
        print(convgrad.set_memory_reuse(True), faults(), convgrad.set_memory_reuse(False), faults())
    """).split()
    assert got[0] == "True" and got[2] == "False"
    on, off = float(got[1]), float(got[3])
    assert off > 400 and on < 20, (off, on)


@glibc
def test_the_first_layer_turns_it_on_unless_the_program_chose():
    got = _run("""
        import numpy as np, convgrad
        before = convgrad.get_memory_reuse()
        convgrad.nn.ReLU()(np.ones(3))
        print(before, convgrad.get_memory_reuse())
    """)
    assert got == "False True"  # import alone changes nothing; running a layer does
    got = _run("""
        import numpy as np, convgrad
        convgrad.set_memory_reuse(False)
        convgrad.nn.ReLU()(np.ones(3))
        print(convgrad.get_memory_reuse())
    """)
    assert got == "False"  # the program's choice stands
    got = _run("""
        import numpy as np, convgrad
        convgrad.set_memory_reuse(None)
        convgrad.nn.ReLU()(np.ones(3))
        print(convgrad.get_memory_reuse())
    """)
    assert got == "False"  # None: the C library as the environment set it, and nn leaves it so


def test_bad_argument():
    with pytest.raises(TypeError, match="set_memory_reuse: enabled must be True, False or None, got 1"):
        convgrad.set_memory_reuse(1)


@glibc
@counts_faults
def test_a_training_step_reuses_the_last_steps_pages():
    """A small residual net's step (arrays of 0.1-2 MiB): page faults per step after two warm-up steps,
    by default (nn turns reuse on) and with reuse refused; counted, not timed."""
    code = """
        import resource, numpy as np, convgrad
        from convgrad import nn
        {setting}
        rng = np.random.default_rng(0)
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, rng=0), nn.BatchNorm2d(16), nn.ReLU(),
                            nn.BasicBlock(16, 32, stride=2, rng=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                            nn.Linear(32, 10, rng=2))
        opt, loss_fn = nn.SGD(net.parameters(), lr=0.01), nn.CrossEntropyLoss()
        x, y = rng.standard_normal((32, 3, 32, 32)).astype(np.float32), rng.integers(0, 10, 32)
        def step():
            opt.zero_grad(); loss, g = loss_fn(net(x), y); net.backward(g, input_grad=False); opt.step()
        step(); step()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            step()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 5)
    """
    default = float(_run(code.format(setting="")))
    refused = float(_run(code.format(setting="convgrad.set_memory_reuse(False)")))
    assert default < 50 and refused > 500, (default, refused)


@glibc
def test_the_environments_malloc_settings_are_the_programs_choice():
    env = {**__import__("os").environ, "MALLOC_ARENA_MAX": "2"}  # not a MALLOC_*_ tuning variable
    code = "import numpy as np, convgrad; convgrad.nn.ReLU()(np.ones(3)); print(convgrad.get_memory_reuse())"
    run = lambda env: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                     check=True).stdout.strip()
    assert run(env) == "True"
    assert run({**env, "MALLOC_MMAP_THRESHOLD_": "65536"}) == "False"
    assert run({**env, "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}) == "False"


@glibc
def test_false_before_reuse_changes_nothing_after_it_gives_memory_back():
    got = _run("""
        import convgrad
        from convgrad import memory
        print(convgrad.set_memory_reuse(False), memory._state["applied"], convgrad.set_memory_reuse(True),
              convgrad.set_memory_reuse(False), memory._state["applied"])
    """)
    assert got == "False False True False True"
