"""`--output mlflow://EXPERIMENT[/RUN_NAME]` and `--output tensorboard://DIR`: the results logged where people
keep their experiments.

MLflow (into the store MLflow itself would use: MLFLOW_TRACKING_URI, else its default, a SQLite file in the
working directory): one parent run per command, with the command line and options as params, the tool's
version, git commit, machine and the verdicts as tags, each net's mean and std over its seeds per setting as
metrics, and the results JSON (and the HTML report when there is one) as artifacts; one child run per net,
setting and seed, with its hyperparameters, net and seed as params, its per-epoch history as metrics with
step = epoch, and its final metrics under `final/`.

TensorBoard: DIR/<date-time>/<net>_<setting>_seed<N>/ per run, with the per-epoch scalars, the final ones, and
the HParams plugin's records (the experiment's configuration in DIR/<date-time>/), so that the HParams tab
lines the runs up side by side.

Each library is imported here alone, and only when its output is asked for. Not for: files (files.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from mnist_compare.nets.keras_backends import stderr_silenced
from mnist_compare.output import baseline, files
from mnist_compare.output.verdict import format_setting, grouped, summary_lines, varying_settings
from mnist_compare.records.results import RunResult
from mnist_compare.records.saved import is_number
from mnist_compare.records.spec import SETTING_KEYS

TRACKERS = {"mlflow": "mlflow", "tensorboard": "tensorboard"}  # scheme -> the package that writes it
FINAL = ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "train_time_s")
RUN_STATUS = {"ok": "FINISHED", "interrupted": "KILLED"}  # MLflow's; diverged and error runs are FAILED
PARAM_LIMIT = 6000  # characters in an MLflow param value
BATCH = 500  # metrics per MLflow log_batch call (its limit is 1000)


def tracker_of(target: str) -> str | None:
    """"mlflow" or "tensorboard" when --output names a tracker (SCHEME://...), else None (a file)."""
    scheme, separator, _ = target.partition("://")
    return scheme if separator and scheme in TRACKERS else None


def log_results(target: str, results: list[RunResult], meta: dict[str, Any],
                comparison: baseline.Comparison | None = None, report: str | None = None) -> None:
    """Log the runs, their summary and verdicts into the tracker `target` names."""
    if tracker_of(target) == "mlflow":
        log_mlflow(target, results, meta, comparison, report)
    else:
        log_tensorboard(target, results, meta)


def metric_key(*parts: str) -> str:
    """An MLflow / TensorBoard key of `parts` joined by '/', other characters than MLflow allows as '_'
    (keras_net[jax] -> keras_net_jax_)."""
    return "/".join(re.sub(r"[^\w.\- ]", "_", part).strip("_") for part in parts if part)


def setting_part(result: RunResult, vary: list[str]) -> str:
    """The varying settings of a run, `hidden_size_30 lr_0.1`, or "" when nothing varies."""
    setting = dict(zip(SETTING_KEYS, result.spec.setting(), strict=True))
    return " ".join(f"{key}_{format_setting(setting[key])}" for key in vary)


def run_name(result: RunResult, vary: list[str]) -> str:
    """`keras_net[jax] hidden_size_30 seed 0`: a child run's (and TensorBoard run's) name."""
    return " ".join(filter(None, [result.name, setting_part(result, vary), f"seed {result.seed}"]))


def epoch_series(result: RunResult) -> dict[str, list[float]]:
    """The run's per-epoch history (loss, accuracy, epoch_time_s, and test_* with --eval_every_epoch)."""
    return {key: values for key, values in result.history.items() if isinstance(values, list)}


def run_scalars(result: RunResult, relative: tuple[float, float | None] | None) -> list[tuple[str, float, int]]:
    """(key, value, step) of a run: its history at step = epoch, then `final/<metric>` (the metrics on the full
    sets after training, and its Relative at its setting) at the last epoch; values that are not finite left out."""
    scalars = [(key, value, epoch) for key, series in epoch_series(result).items()
               for epoch, value in enumerate(series, 1)]
    final = {name: getattr(result, name) for name in FINAL}
    final["relative_time"] = relative[0] if relative else None
    scalars += [(f"final/{name}", value, result.spec.number_epochs) for name, value in final.items()]
    return [(key, float(value), step) for key, value, step in scalars if is_number(value)]


def run_params(result: RunResult) -> dict[str, Any]:
    """A run's net, seed and hyperparameters: an MLflow child's params, a TensorBoard run's HParams."""
    return {"net": result.name, "seed": result.seed, **result.hyperparameters}


def summary_metrics(results: list[RunResult]) -> dict[str, float]:
    """`<net>[/<setting>]/<metric>_mean` and `_std` over each group's finished seeds (std from two)."""
    vary = varying_settings(results)
    metrics: dict[str, float] = {}
    for (_, name), runs in grouped(results).items():
        done = [r for r in runs if r.finished]
        for metric in ("test_accuracy", "test_loss", "train_time_s"):
            values = [getattr(r, metric) for r in done if is_number(getattr(r, metric))]
            prefix = metric_key(name, setting_part(runs[0], vary), metric)
            if values:
                metrics[f"{prefix}_mean"] = statistics.fmean(values)
            if len(values) > 1:
                metrics[f"{prefix}_std"] = statistics.stdev(values)
    return metrics


def verdict_tags(results: list[RunResult], comparison: baseline.Comparison | None) -> dict[str, str]:
    """The verdict lines as tags, and with --baseline its outcome and each row's verdicts."""
    tags = {"mnist_compare.summary": "\n".join(summary_lines(results))}
    if comparison is not None:
        tags["mnist_compare.baseline"] = baseline.comparison_lines(comparison)[-1]
        for row in comparison.rows:
            speed = row.time.describe() if row.time else "not judged"
            key = metric_key("mnist_compare.baseline", row.name, baseline.format_setting(row.setting))
            tags[key] = f"accuracy {row.accuracy.describe()}; speed {speed}"
    return tags


def identity_tags(meta: dict[str, Any]) -> dict[str, str]:
    """The tool's version, git commit, machine and libraries, as the results file records them."""
    machine = {key: meta.get(key) for key in ("cpu", "cpu_count", "platform")}
    return {"mnist_compare.version": str(meta.get("tool_version")),
            "mnist_compare.git_commit": str(meta.get("git_commit")),
            "mnist_compare.git_dirty": str(meta.get("git_dirty")),
            "mnist_compare.machine": json.dumps(machine), "mnist_compare.libraries": json.dumps(meta.get("libraries")),
            "mnist_compare.date": str(meta.get("date"))}


def text(value: Any) -> str:
    """A param's value: strings as they are, anything else as JSON, cut to MLflow's limit."""
    return (value if isinstance(value, str) else json.dumps(value))[:PARAM_LIMIT]


def tensorboard_directory(target: str) -> Path:
    """DIR of tensorboard://DIR."""
    return Path(target.removeprefix("tensorboard://")).expanduser()


def mlflow_target(target: str) -> tuple[str, str | None]:
    """("EXPERIMENT", "RUN_NAME" or None) of mlflow://EXPERIMENT[/RUN_NAME]."""
    experiment, _, name = target.removeprefix("mlflow://").partition("/")
    return experiment, name or None


def log_mlflow(target: str, results: list[RunResult], meta: dict[str, Any],
               comparison: baseline.Comparison | None = None, report: str | None = None) -> None:
    """One parent run and a child run per net, setting and seed in the experiment `target` names."""
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store's set-up lines would go to stderr
    experiment, name = mlflow_target(target)
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    parent = client.create_run(experiment_id, run_name=name or f"mnist-compare {meta.get('date')}",
                               tags={**identity_tags(meta), **verdict_tags(results, comparison)})
    parent_id = parent.info.run_id
    try:
        params = {"command_line": meta.get("command_line"), **(meta.get("options") or {})}
        metrics = [(key, value, 0) for key, value in summary_metrics(results).items()]
        log_batch(client, parent_id, metrics, {key: text(v) for key, v in params.items()})
        client.log_text(parent_id, files.render_json(results, meta, comparison), "results.json")
        if report is not None:
            client.log_artifact(parent_id, report)
        vary = varying_settings(results)
        for result, relative in files.relative_of_each(results):
            log_mlflow_child(client, experiment_id, parent_id, result, relative, vary)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")


def log_mlflow_child(client: Any, experiment_id: str, parent_id: str, result: RunResult,
                     relative: tuple[float, float | None] | None, vary: list[str]) -> None:
    """A child run: hyperparameters, net and seed as params; the history per epoch; the final metrics."""
    child = client.create_run(experiment_id, run_name=run_name(result, vary),
                              tags={"mlflow.parentRunId": parent_id, "mnist_compare.status": result.status})
    params = {key: text(value) for key, value in run_params(result).items()}
    log_batch(client, child.info.run_id, run_scalars(result, relative), params)
    client.set_terminated(child.info.run_id, RUN_STATUS.get(result.status, "FAILED"))


def log_batch(client: Any, run_id: str, metrics: list[tuple[str, float, int]], params: dict[str, str]) -> None:
    """Metrics, (key, value, step) each, and params, in batches MLflow accepts."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    entries = [Metric(key, float(value), now, step) for key, value, step in metrics]
    client.log_batch(run_id, params=[Param(key, value) for key, value in params.items()])
    for start in range(0, len(entries), BATCH):
        client.log_batch(run_id, metrics=entries[start:start + BATCH])


def log_tensorboard(target: str, results: list[RunResult], meta: dict[str, Any]) -> None:
    """DIR/<date-time>/<run>/ per run: scalars per epoch, the final ones, and its HParams session."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with stderr_silenced():  # TensorBoard imports TensorFlow when it is there, whose start-up notices go to fd 2
        from tensorboard.plugins.hparams import api as hp
        from tensorboard.plugins.hparams import summary_v2

    root = tensorboard_directory(target) / datetime.now().strftime("%Y%m%d-%H%M%S")
    vary = varying_settings(results)
    hparams = list(dict.fromkeys(["net", "seed", *(key for r in results for key in r.hyperparameters)]))
    metrics = [hp.Metric(f"final/{name}") for name in (*FINAL, "relative_time")]
    write_events(root, [summary_v2.hparams_config_pb([hp.HParam(name) for name in hparams], metrics)])
    for result, relative in files.relative_of_each(results):
        values = run_params(result)
        session = summary_v2.hparams_pb({name: values[name] for name in hparams if name in values},
                                        trial_id=run_name(result, vary))
        write_events(root / metric_key(run_name(result, vary).replace(" ", "_")), [session],
                     run_scalars(result, relative))


def write_events(directory: Path, summaries: list, scalars: list[tuple[str, float, int]] = ()) -> None:
    """One TensorBoard event file in `directory`: the summaries (HParams records), then each scalar at its step."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    directory.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(directory))
    now = time.time()
    for summary in summaries:
        writer.add_event(event_pb2.Event(wall_time=now, step=0, summary=summary))
    for tag, value, step in scalars:
        value_pb = summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary_pb2.Summary(value=[value_pb])))
    writer.close()
