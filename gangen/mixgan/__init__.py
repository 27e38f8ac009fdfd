"""MIX+GAN (Arora et al. 2017, Sections 4-5): mixtures of generators and discriminators, and measured epsilon.

- :mod:`gangen.mixgan.mixture`      :class:`Mixture`, T players with softmax weights, batched
- :mod:`gangen.mixgan.losses`       payoffs, players' losses, penalties, composed into an Objective
- :mod:`gangen.mixgan.train`        :func:`train`, the one training loop (T = 1: a plain GAN)
- :mod:`gangen.mixgan.equilibrium`  :func:`measure_equilibrium` (epsilon via best responses),
                                    the rock-paper-scissors toy GAN

Typical use from a study::

    from gangen.mixgan import preset, train, measure_equilibrium
    from gangen.samplers import ring8
    cfg = preset("mixgan", steps=3000, seed=1)
    result = train(cfg, ring8())                  # result.generators, .discriminators, .history
    eps = measure_equilibrium(result.generators, result.discriminators, ring8(), cfg).eps
"""

from gangen.mixgan.equilibrium import (
    BestResponseBudget,
    EquilibriumResult,
    FiniteGameEquilibrium,
    RockPaperScissorsGAN,
    finite_game_equilibrium,
    measure_equilibrium,
    payoff_matrix,
    rock_paper_scissors,
)
from gangen.mixgan.losses import (
    Loss,
    Objective,
    Penalty,
    compose,
    dragan_penalty,
    gradient_penalty,
    least_squares,
    make_objective,
    max_gradient_penalty,
    minimax,
    nonsaturating,
    wasserstein,
)
from gangen.mixgan.mixture import Mixture, build_mixture, entropy_regularizer
from gangen.mixgan.train import PRESETS, MixGANConfig, MixGANResult, preset, seed_streams, train

__all__ = [
    "BestResponseBudget",
    "EquilibriumResult",
    "FiniteGameEquilibrium",
    "Loss",
    "MixGANConfig",
    "MixGANResult",
    "Mixture",
    "Objective",
    "PRESETS",
    "Penalty",
    "RockPaperScissorsGAN",
    "build_mixture",
    "compose",
    "dragan_penalty",
    "entropy_regularizer",
    "finite_game_equilibrium",
    "gradient_penalty",
    "least_squares",
    "make_objective",
    "max_gradient_penalty",
    "measure_equilibrium",
    "minimax",
    "nonsaturating",
    "payoff_matrix",
    "preset",
    "rock_paper_scissors",
    "seed_streams",
    "train",
    "wasserstein",
]
