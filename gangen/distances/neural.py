r"""The neural-net distance d_{F,phi} (Arora et al. 2017, Definition 2), estimated by training.

.. math::
    d_{F,\phi}(\hat\mu, \hat\nu) = \sup_{D \in F}\ \frac1m\sum_i \phi(D(x_i)) + \frac1n\sum_j \phi(1 - D(y_j)) - 2\phi(1/2)

F is a discriminator family of :mod:`gangen.nn.families` (p parameters); phi a
measuring function of :mod:`gangen.distances.measuring`. The supremum is estimated by
training R restarts with Adam on the ensemble engine (:mod:`gangen.nn.ensemble`, the one
trainer of gangen): every estimate is a lower bound on the sup, reported with its budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gangen._validation import (
    _to_numpy,
    as_batched_samples,
    as_samples,
    check_nonneg_int,
    check_positive_float,
    check_positive_int,
    check_same_dim,
)
from gangen.distances.measuring import DEFAULT_DELTA, LogMeasuring, Measuring, get_measuring
from gangen.nn.families import MLPFamily

__all__ = ["neural_net_distance", "NeuralNetDistance", "default_family", "DEFAULT_HIDDEN"]

#: hidden widths of the default discriminator family
DEFAULT_HIDDEN = (32, 32)


def default_family(d: int) -> MLPFamily:
    """The default F: ``MLPFamily(d, hidden=(32, 32), activation="relu", head="sigmoid")``.

    >>> default_family(2).n_params   # (2*32 + 32) + (32*32 + 32) + (32 + 1)
    1185
    """
    return MLPFamily(d=d, hidden=DEFAULT_HIDDEN, activation="relu", head="sigmoid")


@dataclass(frozen=True)
class NeuralNetDistance:
    """One estimate of d_{F,phi} with its provenance.

    Attributes
    ----------
    value : float
        max over restarts of J on the training samples: a lower bound on the sup (Definition 2).
    heldout_value : float or None
        J of that same discriminator (the best restart on the training samples) on the
        held-out samples; None when no held-out samples were given.
    restart_values : tuple of float
        J of each restart on the training samples.
    restart_heldout_values : tuple of float or None
        J of each restart on the held-out samples (None without held-out samples).
    best_restart : int
        Index of the restart giving ``value``.
    n_params : int
        p, the number of parameters of one discriminator.
    family, phi : the class F and measuring function phi.
    steps, lr, restarts, batch_size, seed : the budget (batch_size None = full batch).
    member_seeds : tuple of int
        The engine seed of each restart (``gangen.nn.ensemble.train_ensemble`` reproduces it).
    """

    value: float
    heldout_value: float | None
    restart_values: tuple[float, ...]
    restart_heldout_values: tuple[float, ...] | None
    best_restart: int
    n_params: int
    family: MLPFamily
    phi: Measuring
    steps: int
    lr: float
    restarts: int
    batch_size: int | None
    seed: int
    member_seeds: tuple[int, ...]


def _as_sets(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """(K, m, d) float32 array and whether the input was batched (ndim 3)."""
    ndim = _to_numpy(x, name).ndim
    if ndim == 3:
        return as_batched_samples(x, name, dtype=np.float32), True
    if ndim == 2:
        return as_samples(x, name, dtype=np.float32)[None], False
    raise ValueError(f"{name} must have shape (m, d) or, for K sample sets, (K, m, d); got ndim={ndim}")


def _member_seed(item_seed: int, position: int, restart: int) -> int:
    return int(np.random.SeedSequence([item_seed, position, restart]).generate_state(1)[0])


def neural_net_distance(
    x: Any,
    y: Any,
    *,
    family: MLPFamily | None = None,
    phi: Measuring | str = LogMeasuring(DEFAULT_DELTA),
    steps: int = 500,
    lr: float = 2e-3,
    restarts: int = 3,
    batch_size: int | None = None,
    seed: int | Sequence[int] = 0,
    x_heldout: Any = None,
    y_heldout: Any = None,
    device: Any = "auto",
    plan: Any = None,
) -> NeuralNetDistance | tuple[NeuralNetDistance, ...]:
    r"""The neural-net distance d_{F,phi} between two samples (Definition 2), by training.

    .. math::
        d_{F,\phi}(\hat\mu,\hat\nu) = \sup_{D\in F}\ E_{x\sim\hat\mu}\phi(D(x)) + E_{y\sim\hat\nu}\phi(1-D(y)) - 2\phi(1/2)

    With phi(t) = t this is the IPM sup_D E D(x) - E D(y). Each of ``restarts``
    discriminators is trained with Adam for ``steps`` steps; the reported ``value`` is
    the best of them on the training samples, a lower bound on the sup. The same
    discriminator is then evaluated on held-out samples when given (the Gulrajani et
    al. 2019 protocol).

    Parameters
    ----------
    x, y : array, shape (m, d) and (n, d), or (K, m, d) and (K, n, d)
        Samples of mu and nu (numpy or torch). Batched inputs give K independent distances,
        all trained at once on the ensemble engine.
    family : MLPFamily, optional
        The class F; default :func:`default_family` (ReLU MLP, hidden (32, 32), sigmoid output).
    phi : measuring object or ``"log"`` / ``"identity"``
        Default LogMeasuring(delta=1e-3): phi(t) = log(0.001 + 0.999 t). ``"log"`` uses that delta.
    steps, lr : Adam steps and learning rate per restart (betas (0.9, 0.999)).
    restarts : int
        Independent initialisations; the sup over them is reported.
    batch_size : int or None
        Rows of each side per step; None = full batch.
    seed : int or sequence of K ints
        Restart r of sample set k starts from seed (seed, k, r) for an int seed and
        (seed[k], 0, r) for a sequence, so ``neural_net_distance(x[k], y[k], seed=s[k])``
        equals item k of ``neural_net_distance(x, y, seed=s)``: bit for bit with
        ``plan="per_member"``, up to float32 rounding otherwise (the automatic plan groups
        members differently for different K).
    x_heldout, y_heldout : arrays shaped like x and y (sizes may differ), optional
        Both or neither.
    device : ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``.
    plan : None, ``"auto"``, ``"per_member"`` or ``gangen.nn.ensemble.ChunkPlan``
        The engine's chunk plan (:func:`gangen.nn.ensemble.train_ensemble`), used for
        training and for the held-out evaluation. None / ``"auto"``: fastest, a result
        depends on its batch mates at float32 level (after many Adam steps this can reach
        the percent level); ``"per_member"``: one discriminator per chunk, so every result
        is independent of the others in the call, bit for bit.

    Returns
    -------
    NeuralNetDistance for (m, d) inputs; a tuple of K of them for (K, m, d) inputs (the
    return type follows the input's shape, never a flag).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 2))
    >>> res = neural_net_distance(x, x, steps=50, device="cpu")   # same samples: J <= 0, sup = 0 at D = 1/2
    >>> -0.05 < res.value <= 1e-6
    True
    """
    from gangen.nn.ensemble import check_plan, evaluate_ensemble, train_ensemble

    xs, batched = _as_sets(x, "x")
    ys, y_batched = _as_sets(y, "y")
    if batched != y_batched:
        shapes = [a.shape if b else a.shape[1:] for a, b in ((xs, batched), (ys, y_batched))]
        raise ValueError(f"x and y must both be (m, d) or both be (K, m, d); got shapes {shapes[0]} and {shapes[1]}")
    check_same_dim(xs, ys)
    K = xs.shape[0]
    if ys.shape[0] != K:
        raise ValueError(f"x and y must hold the same number K of sample sets; got {K} and {ys.shape[0]}")
    d = xs.shape[2]
    if family is None:
        family = default_family(d)
    if not isinstance(family, MLPFamily):
        raise TypeError(f"family must be an MLPFamily (gangen.nn.families); got {type(family).__name__}")
    phi = get_measuring(phi)
    steps = check_positive_int(steps, "steps")
    lr = check_positive_float(lr, "lr")
    restarts = check_positive_int(restarts, "restarts")
    item_seeds, positions = _item_seeds(seed, K, batched)
    check_plan(plan)  # before any training: a bad plan fails fast

    held = None
    if (x_heldout is None) != (y_heldout is None):
        raise ValueError("x_heldout and y_heldout must be given together (both or neither)")
    if x_heldout is not None:
        xh, xh_b = _as_sets(x_heldout, "x_heldout")
        yh, yh_b = _as_sets(y_heldout, "y_heldout")
        if xh_b != batched or yh_b != batched or xh.shape[0] != K or yh.shape[0] != K:
            want = f"(K, m', d) with K = {K}" if batched else "(m', d)"
            got = [a.shape if b else a.shape[1:] for a, b in ((xh, xh_b), (yh, yh_b))]
            raise ValueError(f"held-out samples must be shaped like x and y, {want}; got {got[0]} and {got[1]}")
        check_same_dim(xs, xh, ("x", "x_heldout"))
        check_same_dim(xs, yh, ("x", "y_heldout"))
        held = (xh, yh)

    # restarts are extra members: member k * R + r trains on set k
    member_seeds = [_member_seed(s, pos, r) for s, pos in zip(item_seeds, positions) for r in range(restarts)]
    data_index = np.repeat(np.arange(K), restarts)
    res = train_ensemble(
        xs, ys, family=family, phi=phi, seeds=member_seeds, steps=steps, lr=lr, batch_size=batch_size,
        data_index=data_index, device=device, plan=plan,
    )
    train_vals = res.values.reshape(K, restarts)
    held_vals = None
    if held is not None:
        held_vals = evaluate_ensemble(res.params, held[0], held[1], family=family, phi=phi, data_index=data_index,
                                      device=device, plan=plan)
        held_vals = held_vals.reshape(K, restarts)

    out = []
    for k in range(K):
        best = int(np.argmax(train_vals[k]))
        out.append(
            NeuralNetDistance(
                value=float(train_vals[k, best]),
                heldout_value=None if held_vals is None else float(held_vals[k, best]),
                restart_values=tuple(float(v) for v in train_vals[k]),
                restart_heldout_values=None if held_vals is None else tuple(float(v) for v in held_vals[k]),
                best_restart=best,
                n_params=family.n_params,
                family=family,
                phi=phi,
                steps=steps,
                lr=lr,
                restarts=restarts,
                batch_size=res.batch_size,
                seed=item_seeds[k],
                member_seeds=tuple(member_seeds[k * restarts : (k + 1) * restarts]),
            )
        )
    return tuple(out) if batched else out[0]


def _item_seeds(seed: Any, K: int, batched: bool) -> tuple[list[int], list[int]]:
    """Per sample set: (seed, position) with position k for an int seed and 0 for a sequence."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        s = check_nonneg_int(int(seed), "seed")
        return [s] * K, list(range(K))
    if not batched:
        raise TypeError(f"seed must be a non-negative int for (m, d) inputs; got {seed!r}")
    if not isinstance(seed, (Sequence, np.ndarray)) or isinstance(seed, str) or len(seed) != K:
        raise ValueError(f"seed must be an int or a sequence of K = {K} ints; got {seed!r}")
    return [check_nonneg_int(s if not isinstance(s, np.integer) else int(s), "seed[k]") for s in seed], [0] * K
