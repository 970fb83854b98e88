"""The file MLflow runs to load a logged policy model ("models from code", no pickles).

``experiments.models.log_policy_model`` logs this file as the model's code; MLflow executes it
on ``mlflow.pyfunc.load_model`` and then calls ``PolicyModel.load_context`` with the artifacts.
"""

from mlflow.models import set_model

from experiments.pyfunc import PolicyModel

set_model(PolicyModel())
