"""Tests of gangen.metrics.classifier: the small classifiers, their cache and the classifier score.

Unit tests train on tiny synthetic images (two classes that differ in brightness, which
any conv net separates); the integration test trains briefly on real MNIST from
../shared/data (skipped when absent). Its thresholds come from measurements on this
project's 2-core CPU: 10,000 training images, 1 epoch, seeds 0-3 gave test accuracy
0.963-0.965 and a classifier score of 8.36-8.44 on 2,000 test images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gangen.data import LabeledImages, load_mnist
from gangen.metrics import classifier as clf_module
from gangen.metrics.classifier import (
    CLASSIFIER_PRESETS,
    SmallCNN,
    classifier_logits,
    classifier_score,
    evaluate_accuracy,
    load_classifier,
    train_classifier,
)
from gangen.metrics.inception import inception_score


# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_class_images(n_per_class: int, seed: int, shape=(1, 8, 8)) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: dark noise (0..80); class 1: bright noise (170..255); interleaved."""
    rng = np.random.default_rng(seed)
    dark = rng.integers(0, 81, size=(n_per_class, *shape))
    bright = rng.integers(170, 256, size=(n_per_class, *shape))
    images = np.stack([dark, bright], axis=1).reshape(2 * n_per_class, *shape).astype(np.uint8)
    labels = np.tile([0, 1], n_per_class).astype(np.int64)
    return images, labels


TINY = dict(epochs=10, seed=0, n_classes=2, width=4, depth=2, batch_size=16, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def tiny_data():
    return two_class_images(32, seed=0), two_class_images(20, seed=1)


@pytest.fixture(scope="module")
def tiny_clf(tiny_data):
    (x, y), _ = tiny_data
    return train_classifier(x, y, **TINY)


@pytest.mark.parametrize("shape, depth, convs", [((1, 28, 28), 3, 1), ((3, 32, 32), 3, 2), ((1, 8, 8), 2, 1)])
def test_small_cnn_shapes(shape, depth, convs):
    net = SmallCNN(shape[0], shape[1:], 10, width=4, depth=depth, convs=convs).eval()
    assert net.in_shape == shape
    with torch.no_grad():
        out = net(torch.zeros((5, *shape), dtype=torch.uint8))
    assert out.shape == (5, 10)
    with pytest.raises(TypeError, match="uint8"):
        net(torch.zeros((5, *shape)))


def test_small_cnn_rejects_too_deep():
    with pytest.raises(ValueError, match="depth=4 halves 8x8"):
        SmallCNN(1, (8, 8), depth=4)


def test_trains_on_separable_data(tiny_data, tiny_clf):
    _, (x_test, y_test) = tiny_data
    assert evaluate_accuracy(x_test, y_test, tiny_clf) == 1.0  # brightness classes are trivially separable
    assert not tiny_clf.training
    score = classifier_score(x_test, tiny_clf, splits=2)
    # two equally frequent, correctly classified classes: score in (1, 2]; confident -> near 2
    assert 1.5 < score.mean <= 2.0 + 1e-9


def test_score_is_inception_score_of_logits(tiny_data, tiny_clf):
    _, (x_test, _) = tiny_data
    logits = classifier_logits(x_test, tiny_clf)  # same batches as classifier_score: bit-exact
    assert logits.shape == (40, 2) and logits.dtype == np.float32
    assert classifier_score(x_test, tiny_clf, splits=4, shuffle_seed=3) == inception_score(logits, splits=4, shuffle_seed=3)
    # identical images get identical predictions: score 1
    same = np.repeat(x_test[:1], 10, axis=0)
    assert classifier_score(same, tiny_clf, splits=2).mean == pytest.approx(1.0, abs=1e-12)


def test_logits_independent_of_batch_size(tiny_data, tiny_clf):
    _, (x_test, _) = tiny_data
    np.testing.assert_allclose(
        classifier_logits(x_test, tiny_clf, batch_size=1), classifier_logits(x_test, tiny_clf, batch_size=1000), rtol=1e-5, atol=1e-5
    )
    assert classifier_logits(torch.from_numpy(x_test), tiny_clf).shape == (40, 2)


def test_same_seed_same_classifier_and_global_rng_untouched(tiny_data, tiny_clf):
    (x, y), _ = tiny_data
    state = torch.get_rng_state()
    again = train_classifier(x, y, **TINY)
    assert torch.equal(torch.get_rng_state(), state)
    for (k, a), b in zip(tiny_clf.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    other = train_classifier(x, y, **{**TINY, "seed": 1})
    assert not torch.equal(other.head[-1].weight, tiny_clf.head[-1].weight)


def test_cache_hit_miss_and_atomic_write(tmp_path, tiny_data, monkeypatch):
    (x, y), _ = tiny_data
    first = train_classifier(x, y, **TINY, cache_dir=tmp_path)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 1 and files[0].name.startswith("classifier-") and files[0].suffix == ".pt"

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the cache holds this classifier")

    with monkeypatch.context() as m:
        m.setattr(torch.optim, "Adam", no_training)
        cached = train_classifier(x, y, **TINY, cache_dir=tmp_path)
    for a, b in zip(first.state_dict().values(), cached.state_dict().values()):
        assert torch.equal(a, b)
    assert isinstance(cached, SmallCNN) and not cached.training

    # the key covers the training config and the data content: each change trains anew
    train_classifier(x, y, **{**TINY, "epochs": 1}, cache_dir=tmp_path)
    y2 = y.copy()
    y2[0] = 1 - y2[0]
    train_classifier(x, y2, **TINY, cache_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and not any(n.endswith(".tmp") for n in names)

    loaded = load_classifier(files[0])
    assert torch.equal(loaded.head[-1].weight, first.head[-1].weight)


def test_unreadable_cache_file_is_replaced(tmp_path, tiny_data):
    (x, y), _ = tiny_data
    train_classifier(x, y, **TINY, cache_dir=tmp_path)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"garbage")
    model = train_classifier(x, y, **TINY, cache_dir=tmp_path)
    assert torch.equal(load_classifier(path).head[-1].weight, model.head[-1].weight)


def test_augmented_training_runs_on_rgb(tmp_path):
    x, y = two_class_images(8, seed=2, shape=(3, 16, 16))
    model = train_classifier(x, y, **{**TINY, "epochs": 1, "augment": True, "augment_pad": 2})
    assert model.in_shape == (3, 16, 16)
    assert np.isfinite(classifier_logits(x, model)).all()


def test_augment_crops_and_flips_within_padding():
    gen = torch.Generator().manual_seed(0)
    x = torch.arange(1, 1 + 2 * 3 * 6 * 6, dtype=torch.int64).reshape(2, 3, 6, 6).to(torch.uint8)
    out = clf_module._augment(x, gen, pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    for b in range(2):
        vals = set(out[b].flatten().tolist()) - {0}  # 0 only from the zero padding
        assert vals <= set(x[b].flatten().tolist())
        assert len(vals) >= 3 * 4 * 4  # a shift by at most 2 keeps at least a 4x4 window per channel


def test_load_classifier_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_classifier(tmp_path / "none.pt")
    torch.save({"something": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a gangen classifier file"):
        load_classifier(tmp_path / "x.pt")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(images=np.zeros((4, 1, 8, 8), np.float32)), TypeError, "uint8"),
        (dict(labels=np.zeros(3, np.int64)), ValueError, r"shape \(4,\)"),
        (dict(labels=np.array([0, 1, 2, 0])), ValueError, r"0\.\.1"),
        (dict(labels=np.zeros(4)), TypeError, "integers"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(weight_decay=-1.0), ValueError, "weight_decay"),
        (dict(device="gpu9"), ValueError, "device"),
    ],
)
def test_train_bad_input(kwargs, error, match):
    options = dict(kwargs)
    images = options.pop("images", np.zeros((4, 1, 8, 8), np.uint8))
    labels = options.pop("labels", np.array([0, 1, 0, 1]))
    with pytest.raises(error, match=match):
        train_classifier(images, labels, **{**TINY, **options})


def test_score_bad_input(tiny_clf):
    with pytest.raises(ValueError, match=r"shape \(N, 1, 8, 8\)"):
        classifier_score(np.zeros((4, 1, 28, 28), np.uint8), tiny_clf)
    with pytest.raises(TypeError, match="float_to_uint8"):
        classifier_score(np.zeros((4, 1, 8, 8), np.float32), tiny_clf)
    with pytest.raises(TypeError, match="SmallCNN"):
        classifier_score(np.zeros((4, 1, 8, 8), np.uint8), torch.nn.Identity())
    with pytest.raises(ValueError, match="splits must be <="):
        classifier_score(np.zeros((4, 1, 8, 8), np.uint8), tiny_clf, splits=10)


def test_presets_are_valid_arguments():
    x, y = two_class_images(2, seed=3, shape=(1, 28, 28))
    for name, preset in CLASSIFIER_PRESETS.items():
        shape = (1, 28, 28) if name == "mnist" else (3, 32, 32)
        net = SmallCNN(shape[0], shape[1:], width=preset["width"], depth=preset["depth"], convs=preset["convs"])
        assert net.in_shape == shape
    model = train_classifier(x, y, **{**CLASSIFIER_PRESETS["mnist"], "epochs": 1, "n_classes": 2, "device": "cpu"})
    assert model.in_shape == (1, 28, 28)


@pytest.mark.data
def test_real_mnist_short_training(shared_data):
    train = load_mnist(shared_data / "mnist", "train")
    test = load_mnist(shared_data / "mnist", "test")
    model = train_classifier(train.images[:10000], train.labels[:10000], **{**CLASSIFIER_PRESETS["mnist"], "epochs": 1, "device": "cpu"})
    x_test, y_test = test.images[:2000], test.labels[:2000]
    accuracy = evaluate_accuracy(x_test, y_test, model)
    score = classifier_score(x_test, model)
    assert accuracy > 0.95  # measured 0.963-0.965 (seeds 0-3)
    assert score.mean > 8.0  # measured 8.36-8.44; the full preset reaches 9.71 on all 10,000 test images
    assert score.mean <= 10.0 + 1e-9  # never above the number of classes


def test_report_and_cli_on_a_tiny_data_set(tmp_path, monkeypatch, capsys):
    """report() trains the preset (epochs overridden) and measures the test split; main() prints and writes it."""
    x, y = two_class_images(12, seed=3, shape=(1, 28, 28))
    monkeypatch.setattr("gangen.data.load_dataset", lambda dataset, data_dir, split: LabeledImages(x, y))
    out = clf_module.main(["--dataset", "mnist", "--data-dir", str(tmp_path), "--epochs", "1", "--splits", "2",
                           "--device", "cpu", "--json", str(tmp_path / "r.json")])
    assert out["settings"]["epochs"] == 1 and out["n_train"] == out["n_test"] == len(x)
    clf = train_classifier(x, y, **{**CLASSIFIER_PRESETS["mnist"], "epochs": 1}, device="cpu")
    assert out["test_accuracy"] == evaluate_accuracy(x, y, clf)  # the same seeded classifier
    assert out["real_test_score"]["mean"] == classifier_score(x, clf, splits=2).mean
    import json

    assert json.loads((tmp_path / "r.json").read_text()) == out == json.loads(capsys.readouterr().out)
    with pytest.raises(ValueError, match="dataset"):
        clf_module.report("svhn", tmp_path)
    with pytest.raises(SystemExit):
        clf_module.main(["--dataset", "mnist", "--data-dir", str(tmp_path / "missing"), "--epochs", "0"])
