"""gangen: numerical checks of GAN generalization and equilibrium theory.

Arora, Ge, Liang, Ma & Zhang, "Generalization and Equilibrium in Generative
Adversarial Nets (GANs)", ICML 2017. The public surface lives in the subpackages:

- :mod:`gangen.samplers`   distributions to draw from (Gaussians, toy mixtures, memorizers)
- :mod:`gangen.distances`  JS, Wasserstein and neural-net distances on samples
- :mod:`gangen.nn`         discriminator families and the batched ensemble trainer
- :mod:`gangen.mixgan`     the MIX+GAN trainer (T = 1 is a plain GAN) and equilibrium measurement
- :mod:`gangen.metrics`    Inception Score (torch-fidelity-exact), classifier score, mode coverage,
                           birthday-paradox support estimate
- :mod:`gangen.data`       MNIST (IDX) and CIFAR-10 (pickles, image folders, tar archives) from a local directory
- :mod:`gangen.studies`    the runnable studies (``python -m gangen.studies.<name>``)

Importing :mod:`gangen` has no side effects and does not import torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
