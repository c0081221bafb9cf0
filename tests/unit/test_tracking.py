"""The MLflow dataset a model logs: its schema from a sample, its profile from every row."""

import numpy as np
import pandas as pd
from mlflow.types.utils import _infer_schema

from ml_assets.models.tracking import SCHEMA_SAMPLE_ROWS, training_dataset


def test_the_training_dataset_describes_every_column_from_a_sample_and_counts_every_row():
    rows = SCHEMA_SAMPLE_ROWS * 5
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "amount": rng.random(rows),
            "count_7d": rng.integers(0, 9, rows),
            "channel": pd.Categorical(rng.choice(["web", "pos"], rows)),
            "is_new": rng.random(rows) < 0.1,
            "_label": (rng.random(rows) < 0.02).astype("float64"),
        }
    )
    dataset = training_dataset(
        frame,
        source="/tmp/training_set.parquet",
        name="features@abc",
        targets="_label",
        digest="abc",
    )
    logged = dataset.to_dict()

    assert dataset.schema == _infer_schema(frame)
    assert dataset.schema.input_names() == list(frame.columns)
    assert '"num_rows": 5000' in logged["profile"]
    assert logged["digest"] == "abc"
