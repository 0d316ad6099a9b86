"""The scikit-learn style front of the library: the estimator, its stage API, batched grids,
data-parallel fitting and persistence."""

from disentangled_ssl.estimator.distributed import fit_distributed
from disentangled_ssl.estimator.embeddings import Embeddings
from disentangled_ssl.estimator.estimator import DisentangledSSL, PreparedStage
from disentangled_ssl.estimator.grids import fit_shared_grid, fit_specific_grid
from disentangled_ssl.estimator.persistence import load_model, model_from_checkpoint, save_model

__all__ = [
    "DisentangledSSL",
    "Embeddings",
    "PreparedStage",
    "fit_distributed",
    "fit_shared_grid",
    "fit_specific_grid",
    "load_model",
    "model_from_checkpoint",
    "save_model",
]
