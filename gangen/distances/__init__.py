"""Distances between distributions given by samples (Arora et al. 2017, Definitions 1-2).

Public names (fixed; users and docs rely on them):

- :func:`js_divergence`       JS between histograms (nats)
- :func:`empirical_js`        plug-in JS between two empirical distributions (exact on atoms)
- :func:`knn_js`              k-nearest-neighbour estimator of JS between densities
- :func:`wasserstein`         W_p with Euclidean ground cost (exact, 1-D, Sinkhorn)
- :func:`sliced_wasserstein`  sliced W_p (Monte Carlo over directions)
- :func:`neural_net_distance` d_{F,phi} of Definition 2, trained on the ensemble engine
- :mod:`gangen.distances.measuring`  measuring functions phi with their range and Lipschitz constant

The JS and Wasserstein functions need only numpy/scipy (POT is imported on first use); the
neural-net distance is resolved lazily, so importing this package does not import torch.
"""

from __future__ import annotations

from gangen._lazy import lazy_getattr

# Imported eagerly (numpy/scipy only): binds the name ``wasserstein`` to the function, not to
# the submodule of the same name (which the import system would otherwise leave here).
from gangen.distances.js import empirical_js, js_divergence, knn_js
from gangen.distances.wasserstein import sliced_wasserstein, wasserstein

_EAGER = ["js_divergence", "empirical_js", "knn_js", "wasserstein", "sliced_wasserstein"]
_EXPORTS = {
    "neural_net_distance": "neural",
    "NeuralNetDistance": "neural",
    "measuring": None,
}

__all__ = sorted([*_EAGER, *_EXPORTS])


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__
