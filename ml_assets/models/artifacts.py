"""Where a model's files live between its assets: the training set, evaluation results and
cached drift references."""

from pathlib import Path

import dagster as dg

from headwater_core.config import state_dir

TRAINING_SET_FILE = "training_set.parquet"
EVALUATION_FILE = "evaluation.json"


class ModelArtifacts(dg.ConfigurableResource):
    """The folder for training sets and evaluation files (empty: `<state>/ml`)."""

    path: str = ""

    def folder(self, model: str) -> Path:
        root = Path(self.path) if self.path else state_dir() / "ml"
        folder = root / model
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def training_set(self, model: str) -> Path:
        """The model's training set (Parquet), written by its training-set asset."""
        return self.folder(model) / TRAINING_SET_FILE

    def evaluation(self, model: str) -> Path:
        """The model's last evaluation (JSON), written by its evaluation asset."""
        return self.folder(model) / EVALUATION_FILE
