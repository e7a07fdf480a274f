"""Explain a convolution: geometry, exact contributor sets, the derivation of every gradient, pictures.

``convgrad.explain(input_shape, weight_shape, ...)`` returns an :class:`Explanation`. The
geometry and the contributor sets need only NumPy-free Python; figures and the animated GIF need
matplotlib (``pip install convgrad[explain]``); the interactive HTML page needs nothing.

``convgrad.explain`` (the attribute) is the function; the modules of this subpackage are imported
by their full name, e.g. ``from convgrad.explain.figures import draw``.

Modules: ``geometry`` (per-dim sizes and unread positions), ``relation`` (contributor sets),
``explanation`` (the object), ``derivation`` (text and dict), ``equivalents`` (the same gradients
as calls in convgrad, PyTorch, JAX and TensorFlow), ``higher`` (the double backward and the JVP as
calls of the same convolution), ``traps`` (warnings), ``figures`` and
``animation`` (matplotlib), ``page`` (the HTML page). docs/questions.md is written by docs
tooling outside the library (docs/tools/questions.py).
"""

from .explanation import OPERANDS, QUANTITIES, Explanation, explain
from .geometry import DimGeometry

__all__ = ["DimGeometry", "Explanation", "OPERANDS", "QUANTITIES", "explain"]
