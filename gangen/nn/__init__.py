"""Discriminator families and the batched ensemble trainer.

Public names (resolved lazily, so ``from gangen.nn import MLPFamily`` does not import torch):

- :class:`MLPFamily`, :func:`linear_family`   families with an exact parameter count p
- :func:`train_ensemble`     train K independent members at once (Definition 2's objective)
- :func:`train_ensemble_stream`  K members on a shared stream of fresh, weighted batches (best responses)
- :func:`evaluate_ensemble`  their objective on other (held-out) samples, without training
- :func:`value_and_grad`     the objective and its hand-written gradient
- :class:`EnsembleResult`, :class:`ChunkPlan`, :func:`plan_chunks`, :func:`per_member_plan`, :func:`resolve_device`
"""

from __future__ import annotations

from gangen._lazy import lazy_getattr

_EXPORTS = {
    "MLPFamily": "families",
    "linear_family": "families",
    "train_ensemble": "ensemble",
    "train_ensemble_stream": "ensemble",
    "evaluate_ensemble": "ensemble",
    "value_and_grad": "ensemble",
    "EnsembleResult": "ensemble",
    "ChunkPlan": "ensemble",
    "plan_chunks": "ensemble",
    "per_member_plan": "ensemble",
    "check_plan": "ensemble",
    "PLAN_NAMES": "ensemble",
    "resolve_device": "ensemble",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__
