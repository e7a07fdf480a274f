"""convgrad: exact N-d convolution forward and backward passes in NumPy, and why they are what they are.

The public functions mirror ``torch.nn.functional`` and ``torch.nn.grad`` (channels first,
PyTorch's weight layouts) and go beyond them: any number of spatial dims, asymmetric padding,
``padding="same"`` at any stride, and a choice of algorithms (:func:`available_algorithms`).
"""

from .api import (
    Gradients,
    available_algorithms,
    conv,
    conv1d,
    conv1d_input,
    conv1d_weight,
    conv2d,
    conv2d_input,
    conv2d_weight,
    conv3d,
    conv3d_input,
    conv3d_weight,
    conv_backward,
    conv_input,
    conv_transpose,
    conv_transpose1d,
    conv_transpose2d,
    conv_transpose3d,
    conv_transpose_backward,
    conv_weight,
)
from .explain import Explanation, explain
from .higher import (
    DoubleGradients,
    Jvp,
    conv_double_backward,
    conv_jvp,
    conv_transpose_double_backward,
    conv_transpose_jvp,
)
from .pooling import avg_pool, avg_pool_backward, max_pool, max_pool_backward
from .lax import conv_general_dilated, conv_general_dilated_backward
from .planning import ConvPlan, plan
from .verify import VerifyReport, verify
from .memory import get_memory_reuse, set_memory_reuse
from .runtime import get_num_threads, get_workspace_limit, set_num_threads, set_workspace_limit, settings
from .selection import choose_algorithm, clear_algorithm_cache
from .spec import ConvSpec, conv_spec, conv_transpose_spec

# `import convgrad` gives `convgrad.nn` as `import torch` gives `torch.nn` (it adds ~20 ms to an
# import dominated by NumPy and SciPy; measured with `python -X importtime`)
from . import nn

__version__ = "0.1.0"

__all__ = [
    "ConvPlan",
    "ConvSpec",
    "DoubleGradients",
    "Explanation",
    "Gradients",
    "Jvp",
    "available_algorithms",
    "avg_pool",
    "avg_pool_backward",
    "choose_algorithm",
    "clear_algorithm_cache",
    "conv",
    "conv1d",
    "conv1d_input",
    "conv1d_weight",
    "conv2d",
    "conv2d_input",
    "conv2d_weight",
    "conv3d",
    "conv3d_input",
    "conv3d_weight",
    "conv_backward",
    "conv_double_backward",
    "conv_general_dilated",
    "conv_general_dilated_backward",
    "conv_input",
    "conv_jvp",
    "conv_spec",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose_backward",
    "conv_transpose_double_backward",
    "conv_transpose_jvp",
    "conv_transpose_spec",
    "conv_weight",
    "explain",
    "get_memory_reuse",
    "get_num_threads",
    "max_pool",
    "max_pool_backward",
    "nn",
    "plan",
    "get_workspace_limit",
    "set_memory_reuse",
    "set_num_threads",
    "set_workspace_limit",
    "settings",
    "verify",
    "VerifyReport",
]
