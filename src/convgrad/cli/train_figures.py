"""The pictures ``convgrad train`` writes: learning curves, the learned first-layer filters, the mistakes.

Images get image tiles; the 1-D signals of MNIST-1D get line plots (each kernel as a stem plot
of its taps, each mistaken signal as a curve).

Needs matplotlib (the ``train`` extra); :func:`write` raises ``ImportError`` without it. Each file
is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen needed
    import matplotlib.pyplot as plt

    return plt


def write(out: Path, history, model, test) -> list[Path]:
    """Write ``curves.png``, ``filters.png`` and ``mistakes.png`` into ``out``; returns their paths."""
    plt = _pyplot()
    return [curves(out / "curves.png", history, plt), filters(out / "filters.png", model[0].weight.value, plt),
            mistakes(out / "mistakes.png", model, test, plt)]


def _save(fig, path: Path, plt, **kwargs) -> None:
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, **kwargs)
    finally:
        plt.close(fig)


def curves(path: Path, history, plt) -> Path:
    """Loss and accuracy per epoch, training and test, side by side."""
    epochs = [r.epoch for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    ax_loss.plot(epochs, [r.train_loss for r in history], "o-", ms=3, label="training")
    ax_loss.plot(epochs, [r.test_loss for r in history], "s-", ms=3, label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss (label-smoothed cross-entropy)", title="Loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * r.train_accuracy for r in history], "o-", ms=3, label="training")
    ax_acc.plot(epochs, [100 * r.test_accuracy for r in history], "s-", ms=3, label="test")
    final = history[-1].test_accuracy
    ax_acc.axhline(100 * final, color="gray", lw=0.8, ls="--")
    ax_acc.annotate(f"final test {100 * final:.1f}%", (epochs[-1], 100 * final), textcoords="offset points",
                    xytext=(-5, -14), ha="right", fontsize=9, color="dimgray")
    low = min(100 * min(r.test_accuracy for r in history), 100 * min(r.train_accuracy for r in history))
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy", ylim=(max(0, low - 2), 100.5))
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle("convgrad train: a CNN trained with convgrad's own gradients")
    fig.tight_layout()
    _save(fig, path, plt)
    return path


def filters(path: Path, weight: np.ndarray, plt) -> Path:
    """The first convolution's kernels, one tile each, on one symmetric colour scale (red +, blue -)."""
    w = weight[:, 0] if weight.shape[1] == 1 else weight.mean(axis=1)  # (C_out, kH, kW) or (C_out, k)
    if w.ndim == 2:
        return filters_1d(path, w, plt)
    count = len(w)
    cols = min(8, count)
    rows = math.ceil(count / cols)
    scale = float(np.abs(w).max()) or 1.0
    # "compressed" packs the square tiles without the empty band between rows that fixed-aspect
    # images leave in an ordinary grid (the colorbar takes width, the rows kept their full height)
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.8, 1.1 * rows + 0.6), dpi=110, squeeze=False,
                             layout="compressed")
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        image = ax.imshow(w[i], cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        ax.set_title(str(i), fontsize=8, pad=2)
    k = "x".join(str(s) for s in w.shape[1:])
    fig.suptitle(f"First-layer filters: {count} learned {k} kernels (red positive, blue negative)", fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, pad=0.02)
    _save(fig, path, plt, bbox_inches="tight")
    return path


def filters_1d(path: Path, w: np.ndarray, plt) -> Path:
    """1-D kernels ``(C_out, k)``, one stem plot of the ``k`` taps each, on one shared vertical scale."""
    count, k = w.shape
    cols = min(8, count)
    rows = math.ceil(count / cols)
    scale = 1.1 * float(np.abs(w).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols + 0.4, 1.1 * rows + 0.6), dpi=110, squeeze=False,
                             sharey=True)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.tick_params(labelsize=6)
        if i >= count:
            ax.axis("off")
            continue
        ax.axhline(0, color="gray", lw=0.6)
        ax.vlines(np.arange(k), 0, w[i], colors=np.where(w[i] >= 0, "firebrick", "royalblue"), lw=2)
        ax.plot(np.arange(k), w[i], "k.", ms=3)
        ax.set(ylim=(-scale, scale), xlim=(-0.7, k - 0.3))
        ax.set_title(str(i), fontsize=8, pad=2)
    fig.suptitle(f"First-layer filters: {count} learned 1-D kernels of {k} taps (red positive, blue negative)",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, path, plt, bbox_inches="tight")
    return path


def mistakes(path: Path, model, test, plt, limit: int = 24) -> Path:
    """The held-out images the trained network gets wrong (up to ``limit``), with true and predicted class."""
    from ..nn.training import predict_logits

    predicted = predict_logits(model, test.images).argmax(axis=1)
    wrong = np.flatnonzero(predicted != test.labels)[:limit]
    cols = max(1, min(8, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols + 0.4, 1.6 * rows + 0.8), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    signals = test.images.ndim == 3  # (N, 1, L): draw curves
    low, high = (float(test.images.min()), float(test.images.max())) if signals and len(test) else (0, 1)
    for ax, i in zip(axes.flat, wrong):
        if signals:
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.plot(test.images[i, 0], color="black", lw=1.2)
            ax.set_ylim(low, high)
        else:
            ax.imshow(test.images[i, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"{test.labels[i]} as {predicted[i]}", fontsize=9, color="firebrick")
    total = int((predicted != test.labels).sum())
    if total == 0:
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=11)
    shown = f" (first {len(wrong)})" if total > len(wrong) else ""
    kind = "signals" if signals else "images"
    fig.suptitle(f"Held-out mistakes: {total} of {len(test)} {kind}{shown}, true class as predicted class", fontsize=10)
    fig.tight_layout()
    _save(fig, path, plt, bbox_inches="tight")
    return path
