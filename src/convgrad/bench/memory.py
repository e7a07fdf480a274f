"""Peak memory of one forward + backward pass, measured the same way for convgrad and PyTorch.

Each measurement runs in a fresh Python process (``python -m convgrad.bench.memory``) that
builds the operands, runs the forward and backward pass once to warm up, resets the kernel's
resident-set high-water mark (``/proc/self/clear_refs``), runs them again and reads the
high-water mark (``VmHWM``). The figure reported is that peak minus the resident size just
before the measured run: everything the pass needed beyond its operands -- the output and the
gradients it returns plus all scratch memory -- as physical memory, whoever allocated it.

The child runs with ``MALLOC_MMAP_THRESHOLD_`` fixed, so that glibc gives every large freed
block back to the kernel at once; otherwise memory freed by the warm-up run would be reused
unseen and the peak would read low. Linux only (``None`` elsewhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["peak_memory", "measure_in_this_process"]


def _status() -> dict[str, int]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def measure_in_this_process(layer_name: str, library: str, threads: int, algorithm: str, workspace_limit: int | None,
                            custom: dict | None = None, data_format: str = "channels_first",
                            dtype: str = "float32") -> dict:
    from .. import runtime, workspace
    from .layers import Layer, layer
    from .timing import blas_threads, convgrad_functions, operands, torch_functions

    lay = Layer(**custom) if custom else layer(layer_name)
    x, w, b, dy = operands(lay, dtype=dtype)
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
        both = torch_functions(lay, x, w, b, dy)["both"]
    else:
        both = convgrad_functions(lay, x, w, b, dy, algorithm, data_format)["both"]
    limit = {} if workspace_limit is None else {"workspace_limit": workspace_limit}
    with runtime.settings(num_threads=threads, **limit), blas_threads(threads):
        result = both()
        del result
        # convgrad keeps the scratch blocks of the warm-up run for the next call: give them back to
        # the system, so that the measured run's scratch counts as the first call's would
        workspace.clear()
        before = _status()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        result = both()
        after = _status()
        del result
    return {"peak_bytes": after["VmHWM"] - before, "kept_bytes": after["VmRSS"] - before}


def peak_memory(layer, library: str, threads: int, algorithm: str = "auto", workspace_limit: int | None = None,
                timeout: float = 600.0, data_format: str = "channels_first", dtype: str = "float32") -> int | None:
    """Peak bytes of one forward + backward of ``layer`` by ``library`` ('convgrad' or 'torch')."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    import dataclasses

    from .layers import LAYERS

    custom = None if LAYERS.get(layer.name) == layer else dataclasses.asdict(layer)
    args = json.dumps({"layer_name": layer.name, "library": library, "threads": threads, "algorithm": algorithm,
                       "workspace_limit": workspace_limit, "custom": custom, "data_format": data_format,
                       "dtype": dtype})
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    proc = subprocess.run([sys.executable, "-m", "convgrad.bench.memory", args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {layer.name} with {library} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_bytes"]


if __name__ == "__main__":
    params = json.loads(sys.argv[1])
    if params.get("custom"):
        params["custom"]["size"] = tuple(params["custom"]["size"])
        params["custom"]["kernel"] = tuple(params["custom"]["kernel"])
    print(json.dumps(measure_in_this_process(**params)))
