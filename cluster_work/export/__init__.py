"""Results into the trackers people use (MLflow, TensorBoard, W&B), by an exporter that follows the durable
results files in a process of its own: a tracker can never cost a result or slow the sweep.

- `source`: the repetitions below a sweep folder and which of them changed (cheaply, for 10^5 of them);
  each one's rows and state, read with the store's readers.
- `journal`: the export cursor, per repetition, in a file the exporter owns.
- `engine`: one repetition's sync, exactly once after any kill; back-off while a tracker is down.
- `mlflow_tracker`, `tensorboard_tracker`, `wandb_tracker`: what each tracker gets (their packages are
  optional extras, imported there only).
- `spec`: the config's `export:` block; `cli`: `python -m cluster_work export`; `beside`: the exporter a
  run starts beside itself.
"""
