"""Learning curves: per-epoch training loss and accuracy (and test accuracy when recorded) of each run.

Uses matplotlib's Agg backend, so no display is needed. Not for: tables (report.py).
"""

from __future__ import annotations

from pathlib import Path

from results import RunResult, atomic_write

FIGURE_SIZE_INCHES = (11, 4.5)
DPI = 100


def run_label(result: RunResult, vary: list[str]) -> str:
    settings = ", ".join(f"{key}={result.hyperparameters[key]}" for key in vary)
    suffix = f" seed {result.seed}" if result.seed is not None else ""
    return f"{result.name}{' (' + settings + ')' if settings else ''}{suffix}"


def plot_each_setting(results: list[RunResult], path: str | Path, title: str, vary: list[str]) -> list[Path]:
    """One figure per setting of a sweep (PATH_hidden_size-30.png, ...), or one figure at PATH."""
    path = Path(path)
    if not vary:
        plot_learning_curves(results, path, title, vary)
        return [path]
    groups: dict[tuple, list[RunResult]] = {}
    for result in results:
        groups.setdefault(tuple(result.hyperparameters[key] for key in vary), []).append(result)
    written = []
    for setting, runs in groups.items():
        name = "_".join(f"{key}-{value}" for key, value in zip(vary, setting, strict=True))
        target = path.with_name(f"{path.stem}_{name}{path.suffix}")
        settings = ", ".join(f"{key} {value}" for key, value in zip(vary, setting, strict=True))
        plot_learning_curves(runs, target, f"{title}\n{settings}", [])
        written.append(target)
    return written


def plot_learning_curves(results: list[RunResult], path: str | Path, title: str, vary: list[str]) -> None:
    """Save one PNG of FIGURE_SIZE_INCHES * DPI pixels: loss (left) and accuracy in % (right) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=FIGURE_SIZE_INCHES, dpi=DPI)
    for result in results:
        losses = result.history.get("loss", [])
        epochs = range(1, len(losses) + 1)
        label = run_label(result, vary)
        line, = loss_ax.plot(epochs, losses, marker=".", label=f"{label} train")
        acc_ax.plot(epochs, [100 * a for a in result.history.get("accuracy", [])], marker=".",
                    color=line.get_color(), label=f"{label} train")
        if "test_accuracy" in result.history:
            acc_ax.plot(epochs, [100 * a for a in result.history["test_accuracy"]], linestyle="--",
                        color=line.get_color(), label=f"{label} test")
    loss_ax.set(xlabel="epoch", ylabel="mean cross-entropy", title="Training loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=DPI)
    plt.close(fig)
