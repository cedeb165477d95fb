"""Learning curves: per-epoch training loss and accuracy of each net, the mean over its seeds with a shaded
± std band (and the test accuracy, dashed, when it was recorded).

Uses matplotlib's Agg backend, so no display is needed. Not for: tables (report.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mnist_compare.records.results import RunResult, atomic_write

FIGURE_SIZE_INCHES = (11, 4.5)
DPI = 100


def plot_each_setting(results: list[RunResult], path: str | Path, title: str, vary: list[str]) -> list[Path]:
    """One figure per setting of a sweep (PATH_hidden_size-30.png, ...), or one figure at PATH."""
    path = Path(path)
    if not vary:
        plot_learning_curves(results, path, title)
        return [path]
    written = []
    for setting, runs in by_setting(results, vary).items():
        name = "_".join(f"{key}-{value}" for key, value in zip(vary, setting, strict=True))
        target = path.with_name(f"{path.stem}_{name}{path.suffix}")
        plot_learning_curves(runs, target, f"{title}\n{setting_label(vary, setting)}")
        written.append(target)
    return written


def by_setting(results: list[RunResult], vary: list[str]) -> dict[tuple, list[RunResult]]:
    """The runs of each setting (the values of the `vary` keys), in training order."""
    groups: dict[tuple, list[RunResult]] = {}
    for result in results:
        groups.setdefault(tuple(result.hyperparameters[key] for key in vary), []).append(result)
    return groups


def setting_label(vary: list[str], setting: tuple) -> str:
    """`hidden_size 30, lr 0.1`."""
    return ", ".join(f"{key} {value}" for key, value in zip(vary, setting, strict=True))


def curves_by_net(results: list[RunResult], metric: str, scale: float = 1.0) -> dict[str, np.ndarray]:
    """net name -> (runs, epochs) array of `metric` per epoch, over the runs that recorded every epoch."""
    curves: dict[str, list[list[float]]] = {}
    for result in results:
        values = result.history.get(metric, [])
        if values and len(values) == result.spec.number_epochs:
            curves.setdefault(result.name, []).append([scale * v for v in values])
    return {name: np.array(rows) for name, rows in curves.items()}


def draw_band(ax, curves: np.ndarray, color: str | None, label: str, linestyle: str = "-") -> str:
    """The mean over runs (rows of curves), with ± its std shaded when there are several; returns the color."""
    epochs = np.arange(1, curves.shape[1] + 1)
    mean = curves.mean(axis=0)
    line, = ax.plot(epochs, mean, marker=".", linestyle=linestyle, color=color, label=label)
    if len(curves) > 1:
        std = curves.std(axis=0, ddof=1)
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    return line.get_color()


def learning_curves_figure(results: list[RunResult], title: str):
    """A matplotlib Figure of FIGURE_SIZE_INCHES: loss (left) and accuracy in % (right) per epoch, one line
    per net (mean over its seeds, ± std shaded), test accuracy dashed."""
    plt = pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=FIGURE_SIZE_INCHES, dpi=DPI)
    losses, train_acc = curves_by_net(results, "loss"), curves_by_net(results, "accuracy", 100)
    test_acc = curves_by_net(results, "test_accuracy", 100)
    for name, curves in losses.items():
        runs = f" ({len(curves)} seeds)" if len(curves) > 1 else ""
        color = draw_band(loss_ax, curves, None, f"{name}{runs}")
        if name in train_acc:
            draw_band(acc_ax, train_acc[name], color, f"{name} train")
        if name in test_acc:
            draw_band(acc_ax, test_acc[name], color, f"{name} test", linestyle="--")
    loss_ax.set(xlabel="epoch", ylabel="mean cross-entropy", title="Training loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    finish(fig, (loss_ax, acc_ax), title)
    return fig


def epoch_times_figure(results: list[RunResult], title: str):
    """A matplotlib Figure: each net's wall time per epoch (mean over its seeds, ± std shaded); the first
    epoch holds Keras' tracing or compilation."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(FIGURE_SIZE_INCHES[0] / 2, FIGURE_SIZE_INCHES[1]), dpi=DPI)
    for name, curves in curves_by_net(results, "epoch_time_s").items():
        draw_band(ax, curves, None, name)
    ax.set(xlabel="epoch", ylabel="seconds", title="Time per epoch", ylim=(0, None))
    finish(fig, (ax,), title)
    return fig


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported only when a figure is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig, axes: tuple, title: str) -> None:
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()


def figure_bytes(fig, image_format: str, close: bool = True) -> bytes:
    """The figure as PNG or SVG bytes (SVG text as paths: no font to fetch), and the figure closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=image_format, dpi=DPI)
    if close:
        pyplot().close(fig)
    return buffer.getvalue()


def plot_learning_curves(results: list[RunResult], path: str | Path, title: str) -> None:
    """Save one PNG of FIGURE_SIZE_INCHES * DPI pixels: learning_curves_figure."""
    data = figure_bytes(learning_curves_figure(results, title), "png")
    with atomic_write(path, "wb") as f:
        f.write(data)
