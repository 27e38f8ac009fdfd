r"""Table 1 of Arora et al. (2017) redone: DCGAN vs MIX+DCGAN vs a 5x DCGAN, WGAN vs MIX+WGAN.

The score of a generator G is the Inception Score (Salimans et al. 2016),

    IS(G) = exp( E_{x~G} KL( p(y|x) || p(y) ) ),    p(y) = E_{x~G} p(y|x),

computed as torch-fidelity does (:func:`gangen.metrics.inception.inception_score`:
float64, rows shuffled with seed 2020, ``splits`` equal splits, mean and population std
over the splits). Here p(y|x) is the softmax of either

- the TF Inception-v3 (``scorer="inception"``, CIFAR-10, weights from a local file given
  with ``--inception-weights``: the paper's Table 1 setting), or
- a small CNN trained by gangen on the real training images (``scorer="classifier"``, the
  "MNIST score"; :mod:`gangen.metrics.classifier`, settings ``CLASSIFIER_PRESETS``), whose
  test accuracy is reported beside every score. It lies in [1, 10].

Models (one MIX+GAN training loop, :func:`gangen.mixgan.train`; T = ``n_components``):

- ``dcgan``      DCGAN (non-saturating loss, Adam), label-conditional when ``conditional``;
- ``mix_dcgan``  MIX+DCGAN: T generators and T discriminators of the same architecture;
- ``dcgan_5x``   one DCGAN widened (``width_large``; by default the width whose generator
  plus discriminator parameter count is closest to T times the base model's: the
  paper's "DCGAN (5x size)", matching MIX+DCGAN's parameter count);
- ``wgan``       WGAN (weight clipping ``wgan_clip``, RMSProp ``wgan_lr``, ``n_critic``),
  unconditional as in the paper;
- ``mix_wgan``   MIX+WGAN, T components;
- ``real``       the real images themselves (the "Real data" row): the classifier scorer
  scores held-out *test* images (the classifier was fitted to the training images), the
  Inception scorer scores training images (as the paper's 11.24).

Mixtures are evaluated as the authors' code does: one generator, drawn by the mixture
weights, per group of ``eval_group_size`` = 10 images (:meth:`Mixture.sample`).

One cell per (model, rep) trains the model once, for ``steps`` generator iterations
(the model's final count), from a seed that depends only on (study seed, rep), so every
model of one rep sees the same real-batch stream. Figures 3 and 4 come from that one run:

- Figure 3 (score against iteration): for each of ``curve_models`` the cell also scores
  its generators at the iterations ``curve_steps`` = round(f * steps), f in
  ``curve_fracs``, through the checkpoint callback of :func:`gangen.mixgan.train`
  (called under ``torch.no_grad()``, it cannot disturb training), with the same
  evaluation noise as the final score. Such a checkpoint score equals the final score of
  a separate run of that many iterations (the loop is deterministic; tested), so nothing
  is retrained. The cell's parameters then include ``curve_steps`` ("0,50,100,150");
  other cells have only (model, steps, rep).
- Figure 4 (Wasserstein objective): the critic's w_u^T F w_v on the training batch, from
  the run's history (a row every ``log_every`` iterations).

Rows per cell: ``score`` (mean over splits), ``score_split_std``, parameter counts, the
training history (``train_value``, ``train_d_loss``, ``train_g_loss`` with a ``step``
column), mixture weights, for rep 0 a grid of samples (Figure 2) stored compressed in the
``grid_zb64`` column (zlib + base64 of uint8 (n, C, H, W) pixels; the runner's
``results.csv`` is the only store ``plot`` reads), and for curve models ``curve_score``
and ``curve_score_split_std`` with a ``step`` column.

Run on MNIST (CPU, one torch thread: the quick preset, 16 cells, took 6 min 45 s wall at
load ~2.5; the paper preset, 26 cells, 20 min 23 s at load 2-3; see the note above ``PRESETS``)::

    python -m gangen.studies.inception_table --data-dir ../shared/data/mnist [--preset paper] \
        --classifier-cache studies/inception_table/cache/classifier

and the CIFAR-10 configuration of Table 1 (a GPU job; PAPER.md's architectures and
hyper-parameters, label-conditional DCGAN rows, 50,000 samples, 10 splits)::

    python -m gangen.studies.inception_table --dataset cifar10 --data-dir DIR \
        --inception-weights pt_inception-2015-12-05-6726825d.pth

Fields left at ``None`` take the dataset's value from :data:`DATASET_DEFAULTS` (resolved
when the config is built, so ``config.json`` states every value used).
"""

from __future__ import annotations

import base64
import functools
import math
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

from gangen._validation import check_choice, check_nonneg_int, check_positive_float, check_positive_int
from gangen.studies.runner import Cell, Study, atomic_write_text, main, make_cell, parse_steps_param, steps_param

__all__ = [
    "DATASET_DEFAULTS",
    "IMAGE_SHAPES",
    "InceptionTableConfig",
    "MODEL_LABELS",
    "MODELS",
    "PAPER_TABLE1",
    "PRESETS",
    "STUDY",
    "cells",
    "decode_grid",
    "encode_grid",
    "format_table",
    "curve_steps",
    "large_width",
    "parameter_counts",
    "plot",
    "run_group",
    "summarize",
]

MODELS = ("dcgan", "mix_dcgan", "dcgan_5x", "wgan", "mix_wgan")
REAL = "real"
MIX_MODELS = ("mix_dcgan", "mix_wgan")
WGAN_MODELS = ("wgan", "mix_wgan")
MODEL_LABELS = {
    "dcgan": "DCGAN",
    "mix_dcgan": "MIX+DCGAN",
    "dcgan_5x": "DCGAN (5x size)",
    "wgan": "WassersteinGAN",
    "mix_wgan": "MIX+WassersteinGAN",
    REAL: "Real data",
}
IMAGE_SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
N_CLASSES = 10

#: Table 1 of Arora et al. (2017) as PAPER.md gives it: Inception Score on CIFAR-10, 50,000
#: samples, 10 splits, (mean, std or None, note). "(?)": PAPER.md could not check it against the PDF.
PAPER_TABLE1: dict[str, tuple[float, float | None, str]] = {
    "dcgan": (7.16, 0.10, "(?) best variant in Huang et al.; Wang & Liu report 6.58"),
    "mix_dcgan": (7.72, 0.09, "(?) 5 components"),
    "dcgan_5x": (7.34, 0.07, "(?)"),
    "wgan": (3.82, 0.06, ""),
    "mix_wgan": (4.04, 0.07, "5 components"),
    REAL: (11.24, 0.12, ""),
}

#: Values of the fields left at None, per data set. MNIST: sized for the quick preset (~7 min
#: on this idle 2-core CPU, well within 20). CIFAR-10: Table 1's setting as PAPER.md states it (DCGAN rows label-
#: conditional, Adam lr 1e-4 beta1 0.5 as the authors' code, batch 64, 50,000 samples, 10
#: splits, Inception scorer); the iteration counts are our choice (PAPER.md gives none).
DATASET_DEFAULTS: dict[str, dict[str, object]] = {
    "mnist": dict(width=16, conditional=False, dcgan_lr=2e-4, dcgan_steps=200, wgan_steps=40,
                  n_score_samples=5000, scorer="classifier"),
    "cifar10": dict(width=64, conditional=True, dcgan_lr=1e-4, dcgan_steps=40000, wgan_steps=40000,
                    n_score_samples=50000, scorer="inception"),
}


@dataclass(frozen=True)
class InceptionTableConfig:
    """Models, training and scoring settings of the Table 1 study (every field is a CLI flag)."""

    dataset: Literal["mnist", "cifar10"] = field(default="mnist", metadata={"help": "data set"})
    data_dir: str | None = field(default=None, metadata={
        "help": "folder with the data set's files (MNIST IDX files; CIFAR-10 pickles, image folders or tar.gz); required"})
    inception_weights: str | None = field(default=None, metadata={
        "help": "local pt_inception-2015-12-05-6726825d.pth (or torch-fidelity's weights-inception-...) for scorer=inception"})
    scorer: Literal["classifier", "inception"] | None = field(default=None, metadata={
        "help": "classifier (gangen's SmallCNN softmax) or inception (TF Inception-v3); None: the dataset's"})
    models: tuple[str, ...] = field(default=MODELS, metadata={"help": f"models to train, among {', '.join(MODELS)}"})
    n_seeds: int = field(default=3, metadata={"help": "independent training runs (seeds) per model"})
    n_components: int = field(default=5, metadata={"help": "T, generators and discriminators of the MIX models"})
    width: int | None = field(default=None, metadata={"help": "DCGAN base channel width w (None: the dataset's)"})
    width_large: int | None = field(default=None, metadata={
        "help": "width of dcgan_5x (None: parameter count closest to n_components x the base DCGAN's)"})
    latent_dim: int = field(default=100, metadata={"help": "latent dimension k, z ~ N(0, I_k)"})
    conditional: bool | None = field(default=None, metadata={
        "help": "label-conditional DCGAN rows (WGAN rows never); None: the dataset's (MNIST no, CIFAR-10 yes)"})
    batch_size: int = field(default=64, metadata={"help": "batch size B (real and per generator)"})
    dcgan_steps: int | None = field(default=None, metadata={"help": "generator iterations of the DCGAN rows"})
    dcgan_lr: float | None = field(default=None, metadata={"help": "Adam learning rate (G and D) of the DCGAN rows"})
    dcgan_beta1: float = field(default=0.5, metadata={"help": "Adam beta1 of the DCGAN rows"})
    wgan_steps: int | None = field(default=None, metadata={"help": "generator iterations of the WGAN rows"})
    wgan_lr: float = field(default=5e-5, metadata={"help": "RMSProp learning rate of the WGAN rows"})
    wgan_clip: float = field(default=0.01, metadata={"help": "WGAN weight clip c"})
    n_critic: int = field(default=5, metadata={"help": "critic updates per generator iteration (WGAN rows)"})
    entropy_coef: float = field(default=0.1, metadata={"help": "beta of the mixture-weight entropy regulariser"})
    n_train: int | None = field(default=None, metadata={"help": "GANs train on the first n_train images of a seeded permutation (None: all)"})
    n_score_samples: int | None = field(default=None, metadata={"help": "samples scored per model (None: the dataset's)"})
    splits: int = field(default=10, metadata={"help": "splits of the score (mean and std over them)"})
    eval_group_size: int = field(default=10, metadata={"help": "mixtures: one generator drawn per this many samples"})
    sample_chunk: int = field(default=1000, metadata={
        "help": "samples generated per call (batch-norm uses the statistics of each component's share)"})
    curve_models: tuple[str, ...] = field(default=("dcgan", "mix_dcgan"), metadata={
        "help": "models scored during training (Figure 3)"})
    curve_fracs: tuple[float, ...] = field(default=(0.0, 0.25, 0.5, 0.75), metadata={
        "help": "Figure 3 checkpoints as fractions of the final iteration count (scored during the one training run)"})
    log_every: int | None = field(default=None, metadata={"help": "history row every this many iterations (None: steps/50)"})
    n_grid: int = field(default=36, metadata={"help": "samples in each model's grid (Figure 2; rep 0)"})
    classifier_epochs: int | None = field(default=None, metadata={"help": "scoring classifier's epochs (None: its preset's)"})
    classifier_n_train: int | None = field(default=None, metadata={"help": "scoring classifier's training images (None: all)"})
    classifier_seed: int = field(default=0, metadata={"help": "scoring classifier's seed"})
    classifier_cache: str | None = field(default=None, metadata={
        "help": "folder to cache the trained scoring classifier in (None: retrain in every process)"})
    score_batch_size: int = field(default=500, metadata={"help": "images per scorer forward pass (changes no result)"})
    seed: int = field(default=0, metadata={"help": "study seed; each cell derives its own from it"})

    def __post_init__(self) -> None:
        check_choice(self.dataset, DATASET_DEFAULTS, "dataset")
        if self.data_dir is None:
            raise ValueError(
                "data_dir is required: pass --data-dir DIR, the folder holding the "
                + ("MNIST IDX files (train-images-idx3-ubyte.gz, ...), e.g. --data-dir ../shared/data/mnist"
                   if self.dataset == "mnist" else
                   "CIFAR-10 python pickles (data_batch_1..5), image folders or a cifar tar.gz")
                + "; nothing is downloaded")
        for name, value in DATASET_DEFAULTS[self.dataset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.scorer == "inception" and self.inception_weights is None:
            raise ValueError("scorer='inception' needs --inception-weights PATH (a local "
                             "pt_inception-2015-12-05-6726825d.pth); gangen never downloads it")
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names among {MODELS}; got {self.models}")
        bad = [m for m in self.curve_models if m not in MODELS]
        if bad:
            raise ValueError(f"curve_models must be among {MODELS}; got {self.curve_models}")
        for f in self.curve_fracs:
            if not 0.0 <= f < 1.0:
                raise ValueError(f"each of curve_fracs must lie in [0, 1) (the final iteration is always scored); got {f}")
        for name in ("n_seeds", "n_components", "width", "latent_dim", "batch_size", "n_critic", "splits",
                     "eval_group_size", "sample_chunk", "n_score_samples", "score_batch_size"):
            check_positive_int(getattr(self, name), name)
        for name in ("dcgan_steps", "wgan_steps", "n_grid", "seed", "classifier_seed"):
            check_nonneg_int(getattr(self, name), name)
        for name in ("width_large", "n_train", "log_every", "classifier_epochs", "classifier_n_train"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), name)
        for name in ("dcgan_lr", "wgan_lr", "wgan_clip"):
            check_positive_float(getattr(self, name), name)
        if not 0.0 <= self.dcgan_beta1 < 1.0:
            raise ValueError(f"dcgan_beta1 must lie in [0, 1); got {self.dcgan_beta1}")
        if not (math.isfinite(self.entropy_coef) and self.entropy_coef >= 0):
            raise ValueError(f"entropy_coef must be a finite number >= 0; got {self.entropy_coef}")
        if self.n_score_samples < self.splits:
            raise ValueError(f"n_score_samples ({self.n_score_samples}) must be >= splits ({self.splits})")
        if self.width_large is None:
            object.__setattr__(self, "width_large", large_width(
                IMAGE_SHAPES[self.dataset], self.width, factor=self.n_components, latent_dim=self.latent_dim,
                num_classes=N_CLASSES if self.conditional else 0))


# Sizes from timings on this 2-core CPU (OMP_NUM_THREADS=1, two other 1-thread jobs running, load
# 2.3-3.5; CPU seconds, which match the wall time of an idle core): per generator iteration at width
# 16, DCGAN ~0.025 s, MIX+DCGAN (T = 5: all 25 G/D pairs) ~0.26 s, the 5x DCGAN (width 63) ~0.1 s,
# WGAN ~0.1 s, MIX+WGAN ~0.8 s (n_critic = 5 passes over 25 pairs); scoring 5,000 samples ~1 s
# (a Figure 3 checkpoint costs one score, nothing is retrained); the real-data cell ~26 s (it
# trains the MNIST classifier when not cached). quick (200 / 40 iterations, 3 seeds): 16 cells,
# 6 min 45 s wall (357 CPU-s) at load ~2.5. paper (400 / 80, 5 seeds): 26 cells, 20 min 23 s wall
# (1,094 CPU-s) at load 2-3, from scratch.
PRESETS = {
    "tiny": {"width": 4, "latent_dim": 8, "batch_size": 16, "dcgan_steps": 3, "wgan_steps": 2, "n_seeds": 2,
             "n_components": 2, "n_train": 200, "n_score_samples": 40, "splits": 2, "sample_chunk": 20,
             "curve_fracs": (0.0, 0.5), "n_grid": 4, "classifier_epochs": 1, "classifier_n_train": 200},
    "quick": {},
    # MNIST at paper scale for this machine: twice the iterations of quick, 5 seeds (the CIFAR-10 Table 1
    # configuration is --dataset cifar10 with the default preset; these step counts are MNIST's).
    "paper": {"dcgan_steps": 400, "wgan_steps": 80, "n_seeds": 5},
}


# --------------------------------------------------------------------------- models


def parameter_counts(image_shape: tuple[int, int, int], width: int, *, latent_dim: int, num_classes: int) -> tuple[int, int]:
    """(generator, discriminator) trainable parameter counts of one DCGAN player pair.

    >>> parameter_counts((1, 28, 28), 8, latent_dim=100, num_classes=0)
    (81417, 3017)
    """
    from gangen.nn.players import DCGANDiscriminator, DCGANGenerator, count_parameters

    with torch.device("meta"):  # shapes only, no memory, no RNG
        g = DCGANGenerator(image_shape, latent_dim=latent_dim, width=width, num_classes=num_classes)
        d = DCGANDiscriminator(image_shape, width=width, num_classes=num_classes)
    return count_parameters(g), count_parameters(d)


def large_width(image_shape: tuple[int, int, int], width: int, *, factor: int, latent_dim: int, num_classes: int) -> int:
    """The width w' whose G + D parameter count is closest to ``factor`` x that at ``width`` (ties: smaller w').

    The paper's "DCGAN (5x size)" has as many parameters as MIX+DCGAN with 5 components.

    >>> large_width((1, 28, 28), 8, factor=1, latent_dim=100, num_classes=0)
    8
    """
    def total(w: int) -> int:
        return sum(parameter_counts(image_shape, w, latent_dim=latent_dim, num_classes=num_classes))

    target = factor * total(width)
    # total(w) increases with w and total(factor * width) >= factor * total(width) (no layer shrinks
    # when widened): bisect for the smallest w with total(w) >= target, then take the closer neighbour.
    lo, hi = width, max(width, factor * width)
    while lo < hi:
        mid = (lo + hi) // 2
        if total(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    if lo > width and abs(total(lo - 1) - target) <= abs(total(lo) - target):
        return lo - 1
    return lo


def _final_steps(config: InceptionTableConfig, model: str) -> int:
    return config.wgan_steps if model in WGAN_MODELS else config.dcgan_steps


def _gan_config(config: InceptionTableConfig, model: str, steps: int, seed: int):
    """The :class:`MixGANConfig` of one model (T = 1 for the plain GANs)."""
    from gangen.mixgan import preset

    final = _final_steps(config, model)
    log_every = config.log_every or max(1, final // 50)
    common = dict(family="dcgan", latent_dim=config.latent_dim, batch_size=config.batch_size, steps=steps,
                  log_every=log_every, seed=seed, entropy_coef=config.entropy_coef,
                  n_components=config.n_components if model in MIX_MODELS else 1)
    if model in WGAN_MODELS:
        return preset("wgan", **common, width=config.width, lr_g=config.wgan_lr, lr_d=config.wgan_lr,
                      clip=config.wgan_clip, n_critic=config.n_critic, num_classes=0)
    width = config.width_large if model == "dcgan_5x" else config.width
    return preset("gan", **common, width=width, lr_g=config.dcgan_lr, lr_d=config.dcgan_lr, beta1=config.dcgan_beta1,
                  num_classes=N_CLASSES if config.conditional else 0)


# --------------------------------------------------------------------------- data and scorers


@functools.lru_cache(maxsize=4)
def _load(dataset: str, data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, C, H, W) and labels (N,) of a split (memoised per process)."""
    from gangen.data import load_dataset

    return tuple(load_dataset(dataset, data_dir, split))


def _subset(n: int, limit: int | None, seed: int) -> np.ndarray:
    """Indices of the first ``limit`` entries of a seeded permutation of range(n) (all when None)."""
    perm = np.random.default_rng(seed).permutation(n)
    return perm if limit is None else perm[: min(limit, n)]


@functools.lru_cache(maxsize=2)
def _classifier(dataset: str, data_dir: str, epochs: int | None, n_train: int | None, seed: int, cache_dir: str | None,
                device: str):
    from gangen.metrics.classifier import CLASSIFIER_PRESETS, train_classifier

    x, y = _load(dataset, data_dir, "train")
    idx = np.sort(_subset(len(x), n_train, seed))
    settings = {**CLASSIFIER_PRESETS[dataset], "seed": seed}
    if epochs is not None:
        settings["epochs"] = epochs
    return train_classifier(x[idx], y[idx], **settings, device=device, cache_dir=cache_dir)


@functools.lru_cache(maxsize=1)
def _inception(path: str, device: str):
    from gangen.metrics.inception import load_inception

    return load_inception(path, device=device)


def _scorer(config: InceptionTableConfig, device: str):
    """The score function: uint8 images (N, C, H, W) -> InceptionScore (mean, std over splits).

    Its network is loaded (or the classifier trained) here, before any training loop, so
    that a checkpoint callback (which runs under ``torch.no_grad()``) never trains it.
    """
    if config.scorer == "classifier":
        from gangen.metrics.classifier import classifier_score

        clf = _classifier(config.dataset, config.data_dir, config.classifier_epochs, config.classifier_n_train,
                          config.classifier_seed, config.classifier_cache, device)
        return lambda images: classifier_score(images, clf, splits=config.splits, batch_size=config.score_batch_size)
    from gangen.metrics.inception import inception_logits, inception_score

    net = _inception(config.inception_weights, device)

    def score(images: np.ndarray):
        if images.shape[1] == 1:  # grayscale -> RGB for Inception
            images = np.repeat(images, 3, axis=1)
        return inception_score(inception_logits(images, net, batch_size=config.score_batch_size), splits=config.splits)

    return score


# --------------------------------------------------------------------------- sample grids


def encode_grid(images: np.ndarray) -> str:
    """uint8 images (n, C, H, W) -> "n,C,H,W:" + base64(zlib(pixels)) (ASCII, for a results.csv cell).

    >>> x = np.arange(8, dtype=np.uint8).reshape(2, 1, 2, 2)
    >>> bool(np.array_equal(decode_grid(encode_grid(x)), x))
    True
    """
    images = np.ascontiguousarray(images, dtype=np.uint8)
    head = ",".join(str(s) for s in images.shape)
    return head + ":" + base64.b64encode(zlib.compress(images.tobytes(), 9)).decode("ascii")


def decode_grid(text: str) -> np.ndarray:
    """Inverse of :func:`encode_grid`: uint8 images (n, C, H, W)."""
    head, _, body = str(text).partition(":")
    shape = tuple(int(s) for s in head.split(","))
    return np.frombuffer(zlib.decompress(base64.b64decode(body)), dtype=np.uint8).reshape(shape)


# --------------------------------------------------------------------------- cells


def _train_seed(config: InceptionTableConfig, rep: int) -> int:
    # Shared by every model and checkpoint of one rep: same real-batch stream, and a shorter
    # run is exactly the prefix of a longer one.
    from gangen.studies.runner import derive_seed

    return derive_seed(config.seed, {"rep": rep, "stream": "train"}) % (2**31 - 1)


def _eval_seed(config: InceptionTableConfig, model: str, rep: int) -> int:
    from gangen.studies.runner import derive_seed

    return derive_seed(config.seed, {"rep": rep, "model": model, "stream": "eval"})


def curve_steps(config: InceptionTableConfig, model: str) -> tuple[int, ...]:
    """The iterations at which ``model`` is scored during training (Figure 3): round(f * final) for f in curve_fracs.

    Empty for a model not in ``curve_models``; the final iteration is never among them (its
    score is the cell's ``score`` row).

    >>> curve_steps(InceptionTableConfig(data_dir="d", dcgan_steps=200, curve_fracs=(0.0, 0.25, 0.5)), "dcgan")
    (0, 50, 100)
    """
    if model not in config.curve_models:
        return ()
    final = _final_steps(config, model)
    return tuple(sorted({int(round(f * final)) for f in config.curve_fracs} - {final}))


def cells(config: InceptionTableConfig) -> list[Cell]:
    """The real-data cell, then one cell per (model, rep): train to the final iteration and score.

    A cell of a curve model carries ``curve_steps`` (e.g. "0,50,100,150") among its parameters:
    it also scores its generators at those iterations of the same run (Figure 3), so the
    checkpoints are part of the cell (and of its cache key). Other cells have only
    (model, steps, rep). Every cell runs alone (``group=None``).
    """
    out = [make_cell(config.seed, {"model": REAL, "steps": 0, "rep": 0})]
    for rep in range(config.n_seeds):
        for model in config.models:
            params: dict[str, object] = {"model": model, "steps": _final_steps(config, model), "rep": rep}
            checkpoints = curve_steps(config, model)
            if checkpoints:
                params["curve_steps"] = steps_param(checkpoints)
            out.append(make_cell(config.seed, params))
    return out


def _real_rows(config: InceptionTableConfig, device: str) -> list[dict]:
    split = "test" if config.scorer == "classifier" else "train"
    x, y = _load(config.dataset, config.data_dir, split)
    idx = _subset(len(x), config.n_score_samples, _eval_seed(config, REAL, 0))
    score = _scorer(config, device)(x[idx])
    rows = [{"metric": "score", "value": score.mean, "n_scored": int(len(idx)), "split": split},
            {"metric": "score_split_std", "value": score.std, "n_scored": int(len(idx)), "split": split}]
    if config.scorer == "classifier":
        from gangen.metrics.classifier import evaluate_accuracy

        clf = _classifier(config.dataset, config.data_dir, config.classifier_epochs, config.classifier_n_train,
                          config.classifier_seed, config.classifier_cache, device)
        xt, yt = _load(config.dataset, config.data_dir, "test")
        rows.append({"metric": "classifier_test_accuracy", "value": evaluate_accuracy(xt, yt, clf), "n_scored": int(len(xt)),
                     "split": "test"})
    if config.n_grid:
        rows.append({"metric": "sample_grid", "value": float(config.n_grid), "grid_zb64": encode_grid(x[idx[: config.n_grid]])})
    return rows


def _generate(gens, n: int, *, seed: int, config: InceptionTableConfig) -> np.ndarray:
    """n samples of a generator mixture as uint8 (n, C, H, W), in chunks of ``sample_chunk``."""
    from gangen.data import float_to_uint8

    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n, config.sample_chunk):
        m = min(config.sample_chunk, n - start)
        labels = torch.as_tensor(rng.integers(0, N_CLASSES, size=m)).to(gens.logits.device) if gens.num_classes else None
        out.append(float_to_uint8(gens.sample(m, seed=rng, group_size=config.eval_group_size, labels=labels)))
    return np.concatenate(out)


def _model_rows(cell: Cell, config: InceptionTableConfig, device: str) -> list[dict]:
    from gangen.mixgan import train

    model, steps, rep = str(cell["model"]), int(cell["steps"]), int(cell["rep"])
    checkpoints = set(parse_steps_param(cell.as_dict().get("curve_steps", "")))
    gan_cfg = _gan_config(config, model, steps, _train_seed(config, rep))
    x, y = _load(config.dataset, config.data_dir, "train")
    idx = np.sort(_subset(len(x), config.n_train, _subset_seed(config)))
    real = torch.from_numpy(x[idx].astype(np.float32) / 127.5 - 1.0)  # (N, C, H, W) in [-1, 1]
    labels = torch.from_numpy(y[idx].copy()) if gan_cfg.num_classes else None
    score_fn = _scorer(config, device)
    eval_seed = _eval_seed(config, model, rep)  # the same noise at every checkpoint and at the end
    curve_rows: list[dict] = []

    def checkpoint(t: int, gens, discs) -> None:
        # Figure 3: score the generators after t iterations of this very run. train() calls this under
        # no_grad with the training streams untouched, so the run (and its final score) is unchanged.
        if t in checkpoints:
            s = score_fn(_generate(gens, config.n_score_samples, seed=eval_seed, config=config))
            curve_rows.extend([{"metric": "curve_score", "value": s.mean, "step": t},
                               {"metric": "curve_score_split_std", "value": s.std, "step": t}])

    result = train(gan_cfg, real, labels=labels, device=device, callback=checkpoint if checkpoints else None)
    gens = result.generators
    score = score_fn(_generate(gens, config.n_score_samples, seed=eval_seed, config=config))
    g_params, d_params = parameter_counts(IMAGE_SHAPES[config.dataset], gan_cfg.width, latent_dim=gan_cfg.latent_dim,
                                          num_classes=gan_cfg.num_classes)
    T = gan_cfg.n_components
    rows = [
        {"metric": "score", "value": score.mean, "n_scored": config.n_score_samples},
        {"metric": "score_split_std", "value": score.std, "n_scored": config.n_score_samples},
        {"metric": "params_generator", "value": T * g_params},
        {"metric": "params_discriminator", "value": T * d_params},
        {"metric": "width", "value": gan_cfg.width},
        {"metric": "n_components", "value": T},
    ]
    if steps == _final_steps(config, model):
        hist = result.history
        for _, h in hist.iterrows():
            for col, metric in (("value", "train_value"), ("d_loss", "train_d_loss"), ("g_loss", "train_g_loss")):
                if col in h and np.isfinite(h[col]):
                    rows.append({"metric": metric, "value": float(h[col]), "step": int(h["step"])})
        if T > 1:
            for i, w in enumerate(gens.weights().detach().cpu().tolist()):
                rows.append({"metric": "mixture_weight_g", "value": w, "component": i})
            for j, w in enumerate(result.discriminators.weights().detach().cpu().tolist()):
                rows.append({"metric": "mixture_weight_d", "value": w, "component": j})
        if rep == 0 and config.n_grid:
            grid = _generate(gens, config.n_grid, seed=eval_seed + 1, config=replace(config, sample_chunk=max(config.n_grid, 1)))
            rows.append({"metric": "sample_grid", "value": float(config.n_grid), "grid_zb64": encode_grid(grid)})
    return rows + curve_rows


def _subset_seed(config: InceptionTableConfig) -> int:
    """Seed of the permutation whose first ``n_train`` training images the GANs see (one per study seed)."""
    from gangen.studies.runner import derive_seed

    return derive_seed(config.seed, {"stream": "train_subset"})


def run_group(cells: list[Cell], config: InceptionTableConfig, device: str) -> list[list[dict]]:
    """Per cell: score the real images, or train the model for ``steps`` iterations and score its samples
    (and, for a curve model, its samples at each of ``curve_steps`` during that run)."""
    return [_real_rows(config, device) if cell["model"] == REAL else _model_rows(cell, config, device) for cell in cells]


# --------------------------------------------------------------------------- summary


def _final_rows(table: pd.DataFrame, config: InceptionTableConfig, model: str) -> pd.DataFrame:
    rows = table[(table["model"] == model)]
    if model != REAL:
        rows = rows[rows["steps"] == _final_steps(config, model)]
    return rows


def _per_seed(table: pd.DataFrame, config: InceptionTableConfig, model: str, metric: str) -> pd.Series:
    rows = _final_rows(table, config, model)
    return rows[rows["metric"] == metric].set_index("rep")["value"].sort_index()


def _curve(table: pd.DataFrame, config: InceptionTableConfig, model: str) -> pd.DataFrame:
    """Figure 3's points of ``model``: columns rep, step, value (checkpoint scores and the final score)."""
    final = _final_rows(table, config, model)
    during = final[final["metric"] == "curve_score"]
    end = final[final["metric"] == "score"]
    return pd.concat([pd.DataFrame({"rep": during["rep"].to_numpy(), "step": during["step"].to_numpy(dtype=float),
                                    "value": during["value"].to_numpy()}),
                      pd.DataFrame({"rep": end["rep"].to_numpy(), "step": end["steps"].to_numpy(dtype=float),
                                    "value": end["value"].to_numpy()})], ignore_index=True)


def _compare(table: pd.DataFrame, config: InceptionTableConfig, better: str, worse: str) -> dict | None:
    from scipy import stats

    a, b = _per_seed(table, config, better, "score"), _per_seed(table, config, worse, "score")
    reps = a.index.intersection(b.index)
    if len(reps) == 0:
        return None
    diff = (a[reps] - b[reps]).to_numpy()
    out = {"n_seeds": int(len(reps)), "mean_diff": float(diff.mean()), "diffs": diff.tolist(),
           "n_seeds_higher": int(np.sum(diff > 0))}
    if len(reps) >= 2 and np.std(diff) > 0:
        test = stats.ttest_rel(a[reps].to_numpy(), b[reps].to_numpy())
        out["paired_t_pvalue"] = float(test.pvalue)
    return out


def summarize(table: pd.DataFrame, config: InceptionTableConfig) -> dict:
    """Per model: score over seeds, split std, parameters; paired MIX vs plain differences; a verdict."""
    scorer = ("MNIST classifier score (gangen SmallCNN softmax in place of Inception)" if config.scorer == "classifier"
              else "Inception Score (TF Inception-v3, torch-fidelity formula)")
    summary: dict = {"dataset": config.dataset, "scorer": scorer, "n_score_samples": config.n_score_samples,
                     "splits": config.splits, "n_components": config.n_components, "rows": {}}
    for model in (*config.models, REAL):
        scores = _per_seed(table, config, model, "score")
        if scores.empty:
            continue
        split_std = _per_seed(table, config, model, "score_split_std")
        label = MODEL_LABELS[model] + (f" ({config.n_components} components)" if model in MIX_MODELS else "")
        entry = {"label": label, "n_seeds": int(scores.size), "score_mean": float(scores.mean()),
                 "score_std_over_seeds": float(scores.std(ddof=1)) if scores.size > 1 else None,
                 "score_split_std_mean": float(split_std.mean()), "scores": scores.tolist(),
                 "paper_cifar10_inception": list(PAPER_TABLE1[model][:2]), "paper_note": PAPER_TABLE1[model][2]}
        if model != REAL:
            for metric in ("params_generator", "params_discriminator", "width", "n_components"):
                entry[metric] = int(_per_seed(table, config, model, metric).iloc[0])
            entry["steps"] = _final_steps(config, model)
        else:
            acc = _per_seed(table, config, REAL, "classifier_test_accuracy")
            if not acc.empty:
                entry["classifier_test_accuracy"] = float(acc.iloc[0])
            summary["classifier_test_accuracy"] = entry.get("classifier_test_accuracy")
        summary["rows"][model] = entry
    comparisons = {}
    for better, worse in (("mix_dcgan", "dcgan"), ("mix_dcgan", "dcgan_5x"), ("dcgan_5x", "dcgan"), ("mix_wgan", "wgan")):
        c = _compare(table, config, better, worse)
        if c is not None:
            comparisons[f"{better}_minus_{worse}"] = c
    summary["comparisons"] = comparisons
    curves = {}
    for model in config.models:
        if curve_steps(config, model):
            by_step = _curve(table, config, model).groupby("step")["value"]
            curves[model] = {"step": [int(s) for s in by_step.mean().index], "score_mean": by_step.mean().tolist(),
                             "n_seeds": by_step.count().tolist()}
    summary["curves"] = curves
    summary["verdict"] = _verdict(summary)
    summary["table_markdown"] = format_table(summary)
    return summary


def _verdict(summary: dict) -> list[str]:
    lines = []
    names = {"mix_dcgan_minus_dcgan": ("MIX+DCGAN", "DCGAN"), "mix_dcgan_minus_dcgan_5x": ("MIX+DCGAN", "DCGAN (5x size)"),
             "dcgan_5x_minus_dcgan": ("DCGAN (5x size)", "DCGAN"), "mix_wgan_minus_wgan": ("MIX+WGAN", "WGAN")}
    for key, c in summary["comparisons"].items():
        a, b = names[key]
        p = c.get("paired_t_pvalue")
        ptext = f", paired t-test p = {p:.2g}" if p is not None else ""
        if c["n_seeds_higher"] == c["n_seeds"] and (p is None or p < 0.05):
            word = "beats"
        elif c["n_seeds_higher"] == 0 and (p is None or p < 0.05):
            word = "scores BELOW"
        else:
            word = "does NOT clearly beat"
        lines.append(f"{a} {word} {b} here: mean difference {c['mean_diff']:+.3f} over {c['n_seeds']} seeds "
                     f"({c['n_seeds_higher']} of {c['n_seeds']} seeds higher{ptext}).")
    return lines


def _pm(mean: float | None, std: float | None, digits: int = 2) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def format_table(summary: dict) -> str:
    """Markdown table shaped like Table 1: our score beside the paper's CIFAR-10 Inception Score."""
    dataset = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[summary["dataset"]]
    head = (f"| method | ours: {dataset}, {'classifier score' if 'classifier' in summary['scorer'] else 'Inception Score'}, "
            "mean ± std over seeds | mean std over splits | seeds | params G / D (all components) | "
            "paper: CIFAR-10 Inception Score (different data set and scorer) |")
    lines = [head, "|---|---|---|---|---|---|"]
    for model, e in summary["rows"].items():
        params = f"{e['params_generator']:,} / {e['params_discriminator']:,}" if "params_generator" in e else "-"
        pm, ps = e["paper_cifar10_inception"]
        paper = _pm(pm, ps) + (f" {e['paper_note']}" if e["paper_note"] else "")
        lines.append(f"| {e['label']} | {_pm(e['score_mean'], e['score_std_over_seeds'])} | {e['score_split_std_mean']:.2f} | "
                     f"{e['n_seeds']} | {params} | {paper} |")
    notes = [f"Scorer: {summary['scorer']}; {summary['n_score_samples']:,} samples, {summary['splits']} splits."]
    if summary.get("classifier_test_accuracy") is not None:
        notes.append(f"Classifier test accuracy: {summary['classifier_test_accuracy']:.4f}.")
    return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"


# --------------------------------------------------------------------------- figures


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    c = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, values.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot(table: pd.DataFrame, config: InceptionTableConfig, summary: dict, fig_dir: Path) -> list[Path]:
    """Figure 3 (score vs iteration), Figure 4 (Wasserstein objective vs iteration), Figure 2 (samples), table."""
    from gangen.plotting import new_figure, new_panels, paper_style, plot_band, save_figure, series_colors

    colors = series_colors(MODELS)
    dataset = {"mnist": "MNIST", "cifar10": "CIFAR-10"}[config.dataset]
    score_name = "classifier score" if config.scorer == "classifier" else "Inception Score"
    paths: list[Path] = []
    with paper_style():
        # ---- Figure 3: score against generator iteration
        curve = [m for m in config.models if m in config.curve_models]
        if curve:
            fig, ax = new_figure(width="single", height=2.3)
            for i, model in enumerate(curve):
                rows = _curve(table, config, model)
                plot_band(ax, rows["step"], rows["value"], color=colors[model], marker="os^Dv"[i % 5],
                          label=f"{MODEL_LABELS[model]} (mean, 95% CI over {rows['rep'].nunique()} seeds)")
            for model in ("dcgan_5x",):  # the final scores of the large DCGAN, for reference
                if model in config.models and model not in curve:
                    rows = _final_rows(table, config, model)
                    rows = rows[rows["metric"] == "score"]
                    plot_band(ax, rows["steps"], rows["value"], color=colors[model], marker="D",
                              label=f"{MODEL_LABELS[model]}, final, mean ± sd ({rows['rep'].nunique()} seeds)")
                    ax.errorbar(rows["steps"].iloc[0], rows["value"].mean(), yerr=rows["value"].std(ddof=1) if len(rows) > 1 else 0,
                                color=colors[model], capsize=2, linewidth=0.9)
            real = summary["rows"].get(REAL)
            if real is not None:
                ax.axhline(real["score_mean"], color="0.35", linestyle="--", linewidth=0.9, label="real test images")
            ax.set(xlabel="generator iteration", ylabel=f"{score_name} ({dataset})")
            top = max(real["score_mean"] if real is not None else 1.0,
                      table.loc[table["metric"].isin(["score", "curve_score"]), "value"].max())
            ax.set_ylim(1.0 - 0.02 * (top - 1.0), 1.0 + 1.18 * (top - 1.0))
            ax.legend(loc="upper left", bbox_to_anchor=(0.0, 0.80))
            paths += save_figure(fig, fig_dir / "inception_table_fig3")
        # ---- Figure 4: Wasserstein objective during training
        wg = [m for m in config.models if m in WGAN_MODELS]
        if wg:
            fig, ax = new_figure(width="single", height=2.3)
            n_logged = int(table.loc[(table["metric"] == "train_value") & table["model"].isin(wg), "step"].nunique())
            window = 1 if n_logged <= 100 else 5  # smooth only long histories
            for model in wg:
                rows = table[(table["model"] == model) & (table["metric"] == "train_value")
                             & (table["steps"] == _final_steps(config, model))]
                parts = []
                for _, r in rows.groupby("rep"):
                    r = r[r["step"] > 0].sort_values("step")  # step 0: the untrained critic, off scale
                    parts.append(pd.DataFrame({"step": r["step"].to_numpy(), "value": _smooth(r["value"].to_numpy(), window)}))
                if parts:
                    both = pd.concat(parts)
                    plot_band(ax, both["step"], both["value"], band="std", color=colors[model], marker=None,
                              label=f"{MODEL_LABELS[model]} ({len(parts)} seeds, mean ± sd)")
            ax.set(xlabel="generator iteration", ylabel=r"Wasserstein objective $E\,D(x) - E\,D(G(z))$")
            ax.legend(loc="lower right")
            note = f"{dataset}; critic's estimate on each training batch,\nfrom iteration 1"
            if window > 1:
                note += f"; moving average over {window} logged points"
            ax.text(0.02, 0.97, note, transform=ax.transAxes, fontsize=6.5, color="0.35", ha="left", va="top")
            paths += save_figure(fig, fig_dir / "inception_table_fig4")
        # ---- Figure 2: sample grids (rep 0, final iteration)
        grids = []
        for model in (*config.models, REAL):
            rows = _final_rows(table, config, model)
            rows = rows[(rows["metric"] == "sample_grid") & (rows["rep"] == 0)]
            if len(rows):
                grids.append((model, decode_grid(rows["grid_zb64"].iloc[0])))
        if grids:
            ncols = 3
            nrows = -(-len(grids) // ncols)
            fig, axes = new_panels(nrows, ncols, width="double", panel_aspect=1.08)
            for ax in axes:
                ax.axis("off")
            for ax, (model, imgs) in zip(axes, grids):
                ax.imshow(_tile(imgs), cmap="gray" if imgs.shape[1] == 1 else None, vmin=0, vmax=255,
                          interpolation="nearest")
                score = _per_seed(table, config, model, "score")
                label = summary["rows"].get(model, {}).get("label", MODEL_LABELS[model])
                ax.set_title(f"{label}: {score.loc[0]:.2f}" if 0 in score.index else label)
            fig.text(0.5, -0.01, f"{dataset}, run 1 of each model at its final iteration; titles give that run's "
                     f"{score_name}. Mixtures draw one generator per {config.eval_group_size} consecutive images "
                     "(the authors' evaluation), so blocks of images share a component.", ha="center", va="top",
                     fontsize=7, wrap=True)
            paths += save_figure(fig, fig_dir / "inception_table_samples")
    table_path = fig_dir / "inception_table_table1.md"
    atomic_write_text(table_path, summary["table_markdown"])
    paths.append(table_path)
    return paths


def _tile(images: np.ndarray, pad: int = 2) -> np.ndarray:
    """uint8 images (n, C, H, W) -> one (rows·(H+pad), cols·(W+pad)[, 3]) mosaic, square-ish, white gaps."""
    n, c, h, w = images.shape
    cols = int(math.ceil(math.sqrt(n)))
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, c), 255, dtype=np.uint8)
    for k in range(n):
        i, j = divmod(k, cols)
        out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = images[k].transpose(1, 2, 0)
    return out[..., 0] if c == 1 else out


STUDY = Study(
    name="inception_table",
    config_cls=InceptionTableConfig,
    cells=cells,
    run_group=run_group,
    summarize=summarize,
    plot=plot,
    presets=PRESETS,
    version="1",
    cache_ignore=("models", "n_seeds", "curve_models", "curve_fracs", "classifier_cache", "score_batch_size"),
    description=__doc__.split("\n\n")[0],
)

if __name__ == "__main__":
    main(STUDY)
