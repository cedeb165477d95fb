"""Read back what `mnist-compare ... --output mlflow://demo --output tensorboard://tb` logged, with the trackers'
own APIs, from the directory the command ran in (MLflow's default store, ./mlflow.db; the TensorBoard DIR, tb/):

    python examples/trackers_readback.py
"""
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

client = MlflowClient()
runs = mlflow.search_runs(experiment_names=["demo"], output_format="list")
for run in sorted(runs, key=lambda r: ("mlflow.parentRunId" in r.data.tags, r.info.run_name)):
    child = "mlflow.parentRunId" in run.data.tags
    loss = client.get_metric_history(run.info.run_id, "loss") if child else []
    shown = (f"loss per epoch {loss[0].value:.4f} (step {loss[0].step}) .. {loss[-1].value:.4f} (step {loss[-1].step})"
             if child else ", ".join(f"{k} {v:.4f}" for k, v in sorted(run.data.metrics.items()) if "accuracy" in k))
    print(f"{'  child' if child else 'parent'} {run.info.run_name!r:40} {run.info.status:9} {shown}")
print("parent artifacts:", [a.path for a in client.list_artifacts(next(
    r for r in runs if "mlflow.parentRunId" not in r.data.tags).info.run_id)])
(stamp,) = Path("tb").iterdir()
for directory in sorted(p for p in stamp.iterdir() if p.is_dir()):
    events = EventAccumulator(str(directory))
    events.Reload()
    loss = events.Scalars("loss")
    hparams = "_hparams_/session_start_info" in events.Tags()["tensors"]
    print(f"tensorboard {directory.relative_to('tb')}: scalars {', '.join(sorted(events.Tags()['scalars'])[:4])}, ...;"
          f" loss at steps {loss[0].step}..{loss[-1].step}; HParams session {hparams}")
