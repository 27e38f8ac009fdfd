"""Sample-quality metrics: Inception Score, classifier score, mode coverage, birthday-paradox support.

Public names (resolved lazily, so ``import gangen.metrics`` does not import torch):

- :func:`inception_score`     Inception Score from logits, exactly as torch-fidelity v0.4
- :func:`load_inception`      the TF-compatible Inception-v3 from a local weight file
- :func:`inception_logits`    ``logits_unbiased`` (N, 1008) of uint8 images, in batches
- :func:`train_classifier`    a small MNIST / CIFAR-10 classifier, cached by content hash
- :func:`classifier_score`    the Inception Score formula on that classifier's softmax
- :func:`evaluate_accuracy`   the classifier's accuracy on labelled images
- :func:`mode_coverage`       modes captured, high-quality fraction, occupancy KL (toy mixtures)
- :func:`birthday_support`    birthday-paradox support-size estimate (Arora & Zhang 2017)
"""

from __future__ import annotations

from gangen._lazy import lazy_getattr

_EXPORTS = {
    "InceptionScore": "inception",
    "inception_score": "inception",
    "load_inception": "inception",
    "inception_logits": "inception",
    "TFInceptionV3": "inception",
    "SmallCNN": "classifier",
    "train_classifier": "classifier",
    "load_classifier": "classifier",
    "classifier_logits": "classifier",
    "classifier_score": "classifier",
    "evaluate_accuracy": "classifier",
    "CLASSIFIER_PRESETS": "classifier",
    "ModeCoverage": "modes",
    "mode_coverage": "modes",
    "model_mode_coverage": "modes",
    "occupancy_kl": "modes",
    "BirthdaySupport": "birthday",
    "birthday_support": "birthday",
    "calibrate_threshold": "birthday",
    "closest_pair": "birthday",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return __all__
