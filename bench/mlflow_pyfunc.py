"""The serve part's model for `mlflow models serve`: an MLflow pyfunc model (models from code)
around the registered version's own Booster file, with the categorical columns made pandas
categories again before the Booster scores them, as `ml_assets.models.train.to_frame` does.

MLflow's lightgbm flavor cannot score a model trained on pandas categories from a JSON request:
its signature has no category type, so the request becomes a frame of strings and LightGBM
refuses it ("categorical_feature do not match"). MLflow's scoring server loads this file; the
platform never does.
"""

import mlflow
import numpy as np
import pandas as pd


class CategoryRestoringBooster(mlflow.pyfunc.PythonModel):
    """The Booster file in the `booster` artifact, scoring frames whose `categorical` columns
    (the model config's list) arrive as strings."""

    def load_context(self, context):
        import lightgbm

        self.booster = lightgbm.Booster(model_file=context.artifacts["booster"])
        self.features = self.booster.feature_name()
        self.categorical = list(context.model_config["categorical"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        frame = model_input[self.features].copy()
        # as train.to_frame: LightGBM maps each category column onto the vocabulary the model
        # stored at training, whatever categories the one-row frame itself has
        for column in self.categorical:
            frame[column] = frame[column].astype("category")
        for column in frame.columns:
            if column not in self.categorical and frame[column].dtype in (bool, object):
                frame[column] = frame[column].astype("float64")
        # one thread, as `headwater serve` (PREDICT_THREADS) and the floor
        return np.asarray(self.booster.predict(frame, num_threads=1))


mlflow.models.set_model(CategoryRestoringBooster())
