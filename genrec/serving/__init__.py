"""Using a trained model: the folder every run keeps (`bundle`: safetensors + JSON, no pickle), `load` and the
one API for every family (`api.TrainedModel`: `recommend(user=...)`, `recommend(history=[...])`, `explain`), and
the explanations (`explain`). A layer of its own above the models (it finds a family through the lazy
registry), level with `genrec.experiments`, whose runner calls `bundle.save_model` once per run.
"""

from genrec.serving.api import TrainedModel, load
from genrec.serving.bundle import save_model

__all__ = ["TrainedModel", "load", "save_model"]
