"""Tests of gangen.metrics.inception: the Inception Score formula, the TF1 resize, the network.

Expected numbers come from closed forms (uniform predictions: 1; n equally frequent
confident classes: n), from a case computed by hand below, and from an independent
reference written with scipy (softmax + KL via scipy.stats.entropy). The network is
tested with random weights of the real files' layout (the real weights are unavailable
here); the key list is checked against torch-fidelity's TF->PyTorch conversion table
(utils/util_convert_inception_weights.py: 94 conv+batch-norm blocks and fc).
The score and the network are also compared with torch-fidelity 0.4.0's own code when
torch-fidelity is installed (optional; skipped otherwise, see ``torch_fidelity_isc`` and
``torch_fidelity_inception_class``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gangen.metrics.inception import (
    INCEPTION_NUM_CLASSES,
    InceptionScore,
    TFInceptionV3,
    inception_logits,
    inception_score,
    load_inception,
    resize_bilinear_tf1,
)

# Tiny tensors: one intra-op thread (see the fixture in conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------
# Inception Score
# --------------------------------------------------------------------------------------


def reference_is(logits: np.ndarray, splits: int, seed: int | None) -> list[float]:
    """Independent reference: scipy softmax and KL (scipy.stats.entropy) per row."""
    x = np.asarray(logits, dtype=np.float64)
    n = x.shape[0]
    if seed is not None:
        x = x[np.random.RandomState(seed).permutation(n)]
    p = scipy.special.softmax(x, axis=1)
    out = []
    for s in range(splits):
        chunk = p[s * n // splits : (s + 1) * n // splits]
        q = chunk.mean(axis=0)
        out.append(math.exp(np.mean([scipy.stats.entropy(row, q) for row in chunk])))
    return out


def test_uniform_predictions_give_one():
    # identical predictions for every image: p = p̄, every KL is 0, exp(0) = 1
    rng = np.random.default_rng(0)
    row = rng.normal(size=7)
    res = inception_score(np.tile(row, (40, 1)), splits=4)
    assert isinstance(res, InceptionScore)
    assert res.mean == pytest.approx(1.0, abs=1e-12)
    assert res.std == pytest.approx(0.0, abs=1e-12)
    assert res.split_scores == pytest.approx((1.0,) * 4, abs=1e-12)
    assert (res.n, res.splits, res.shuffle_seed) == (40, 4, 2020)


@pytest.mark.parametrize("n_classes", [2, 5, 10])
def test_equally_frequent_confident_classes_give_n(n_classes):
    # one-hot predictions of n equally frequent classes: KL(p_i || uniform) = log n, IS = n.
    # Logit gap 50: off-class mass ~ (n-1)·e^-50 ~ 2e-21, far below float64 resolution of n.
    logits = np.tile(50.0 * np.eye(n_classes), (6, 1))  # (6n, n)
    assert inception_score(logits, splits=1).mean == pytest.approx(n_classes, rel=1e-12)
    # unshuffled splits that each hold every class once: every split scores n, std 0
    res = inception_score(logits, splits=6, shuffle_seed=None)
    assert res.split_scores == pytest.approx((n_classes,) * 6, rel=1e-12)
    assert res.std == pytest.approx(0.0, abs=1e-9)


def test_hand_computed_case():
    # rows: logits (0, 0) -> p = (1/2, 1/2); logits (log 3, 0) -> p = (3/4, 1/4)
    # p̄ = (5/8, 3/8); IS = exp(mean of the two KLs) written out by hand:
    kl1 = 0.5 * math.log(0.5 / 0.625) + 0.5 * math.log(0.5 / 0.375)
    kl2 = 0.75 * math.log(0.75 / 0.625) + 0.25 * math.log(0.25 / 0.375)
    expected = math.exp((kl1 + kl2) / 2)
    res = inception_score(np.array([[0.0, 0.0], [math.log(3.0), 0.0]]), splits=1, shuffle_seed=None)
    assert res.mean == pytest.approx(expected, rel=1e-14)
    assert res.std == 0.0
    # by hand: kl1 = 0.5·(−0.22314) + 0.5·0.28768 = 0.03227, kl2 = 0.75·0.18232 + 0.25·(−0.40547)
    # = 0.03537; exp(0.03382) = 1.03440
    assert expected == pytest.approx(1.03440, abs=1e-5)


def test_shuffle_is_randomstate_permutation():
    # torch-fidelity: rows permuted by np.random.RandomState(seed).permutation(N) before the splits
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3.0, size=(50, 6))
    perm = np.random.RandomState(2020).permutation(50)
    a = inception_score(logits, splits=10)
    b = inception_score(logits[perm], splits=10, shuffle_seed=None)
    assert a.split_scores == b.split_scores  # identical operations: bit-exact
    c = inception_score(logits, splits=10, shuffle_seed=7)
    assert c.split_scores != a.split_scores


def test_split_boundaries_and_population_std():
    # N = 13, 4 splits: rows [0, 3), [3, 6), [6, 9), [9, 13) (i·N//splits)
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=2.0, size=(13, 5))
    res = inception_score(logits, splits=4, shuffle_seed=None)
    expected = reference_is(logits, 4, None)
    assert res.split_scores == pytest.approx(expected, rel=1e-12)
    assert res.mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert res.std == pytest.approx(np.std(expected, ddof=0), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(10, 60),
    c=st.integers(2, 12),
    splits=st.integers(1, 5),
    scale=st.floats(0.1, 20.0),
    seed=st.integers(0, 2**31 - 1),
    shuffle=st.booleans(),
)
def test_agrees_with_scipy_reference(n, c, splits, scale, seed, shuffle):
    logits = np.random.default_rng(seed).normal(scale=scale, size=(n, c))
    shuffle_seed = 2020 if shuffle else None
    res = inception_score(logits, splits=splits, shuffle_seed=shuffle_seed)
    expected = reference_is(logits, splits, shuffle_seed)
    assert res.split_scores == pytest.approx(expected, rel=1e-10)
    assert 1.0 - 1e-12 <= res.mean <= c + 1e-9  # IS lies in [1, C]


def test_row_order():
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=4.0, size=(60, 10))
    perm = rng.permutation(60)
    # one split: the score is a function of the set of rows, whatever their order
    assert inception_score(logits[perm], splits=1).mean == pytest.approx(inception_score(logits, splits=1).mean, rel=1e-12)
    # class-sorted confident rows (10 classes x 10): unshuffled splits each see one class
    # and score exactly 1 (the known pitfall); the seeded shuffle mixes classes into
    # every split, so sorted and randomly ordered inputs score alike (both well above 1).
    sorted_logits = np.repeat(30.0 * np.eye(10), 10, axis=0)  # (100, 10), class-sorted
    assert inception_score(sorted_logits, shuffle_seed=None).mean == pytest.approx(1.0, abs=1e-9)
    shuffled_a = inception_score(sorted_logits).mean
    shuffled_b = inception_score(sorted_logits[rng.permutation(100)]).mean
    assert shuffled_a > 4.0 and shuffled_b > 4.0
    assert abs(shuffled_a - shuffled_b) < 1.5


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(4)
    x32 = rng.normal(size=(30, 8)).astype(np.float32)
    ref = inception_score(x32, splits=3)
    assert inception_score(torch.from_numpy(x32), splits=3) == ref  # same float32 values, same result
    x64 = x32.astype(np.float64)  # float32 -> float64 is exact, as torch-fidelity's .double()
    assert inception_score(torch.from_numpy(x64), splits=3) == ref
    assert inception_score(x64.tolist(), splits=3) == ref


def test_underflow_gives_limit_not_nan():
    # p underflows to exactly 0 for the absent class of each split; 0·log 0 := 0, so each
    # single-class split scores 1 (torch-fidelity's raw formula would give NaN here).
    logits = np.array([[1000.0, 0.0], [1000.0, 0.0], [0.0, 1000.0], [0.0, 1000.0]])
    res = inception_score(logits, splits=2, shuffle_seed=None)
    assert res.split_scores == (1.0, 1.0)
    assert inception_score(logits, splits=1, shuffle_seed=None).mean == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize(
    "logits, kwargs, error, match",
    [
        (np.zeros((5, 3)), dict(splits=6), ValueError, "splits must be <= the number of images N=5"),
        (np.zeros((5, 3)), dict(splits=0), ValueError, "splits must be an integer >= 1"),
        (np.zeros((5, 3)), dict(splits=2.0), TypeError, "splits must be an integer"),
        (np.zeros(5), {}, ValueError, r"shape \(N, C\)"),
        (np.zeros((0, 3)), {}, ValueError, "non-empty"),
        (np.array([[0.0, np.nan]] + [[0.0, 1.0]] * 9), {}, ValueError, "1 NaN"),
        (np.array([["a", "b"]]), {}, TypeError, "real numbers"),
        ("logits", {}, TypeError, "got str"),
        (np.zeros((10, 3)), dict(shuffle_seed=1.5), TypeError, "shuffle_seed"),
    ],
)
def test_bad_input_raises(logits, kwargs, error, match):
    with pytest.raises(error, match=match):
        inception_score(logits, **kwargs)


def torch_fidelity_spec():
    """The import spec of the torch_fidelity package (found, not imported), or skip when it is absent."""
    import importlib.util

    spec = importlib.util.find_spec("torch_fidelity")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch-fidelity is not installed (optional independent check; "
                    "pip install --no-deps torch-fidelity==0.4.0 to run it)")
    return spec


def torch_fidelity_isc():
    """torch-fidelity's own ``isc_features_to_metric`` (metric_isc.py), or skip when torch-fidelity is absent.

    ``import torch_fidelity`` (and so ``pytest.importorskip``) needs torchvision, which gangen
    does not use and CI does not install (it would pull a CUDA torch). The function itself
    uses only numpy and torch, so its source is taken verbatim from the installed
    metric_isc.py: the file is parsed (the package is never executed), its two result-key
    constants and the function are compiled, and its ``torch_fidelity.*`` imports (the
    feature-extractor plumbing, which imports torchvision) are left out.
    """
    import ast
    from pathlib import Path

    spec = torch_fidelity_spec()
    path = Path(next(iter(spec.submodule_search_locations))) / "metric_isc.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    keep = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name == "isc_features_to_metric")
            or (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.startswith("KEY_METRIC_ISC")
                                                      for t in node.targets))]
    assert [getattr(n, "name", None) for n in keep].count("isc_features_to_metric") == 1, f"no isc_features_to_metric in {path}"
    namespace = {"np": np, "torch": torch}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return namespace["isc_features_to_metric"], namespace["KEY_METRIC_ISC_MEAN"], namespace["KEY_METRIC_ISC_STD"]


# (N, C, splits, logit scale, float dtype): small and large N, N not divisible by splits,
# one split, Inception's 1008 classes, near-one-hot (scale 30) and near-uniform (0.05) predictions.
TORCH_FIDELITY_CASES = [
    (10, 10, 10, 1.0, np.float64),
    (37, 5, 4, 3.0, np.float64),
    (100, 10, 1, 0.05, np.float64),
    (1000, 10, 10, 30.0, np.float32),
    (513, 1008, 7, 4.0, np.float32),
    (5000, 10, 10, 6.0, np.float64),
]


@pytest.mark.parametrize("n, c, splits, scale, dtype", TORCH_FIDELITY_CASES)
@pytest.mark.parametrize("shuffle_seed", [2020, 7, None])
def test_agrees_with_torch_fidelity(n, c, splits, scale, dtype, shuffle_seed):
    # Independent implementation: torch-fidelity 0.4.0's isc_features_to_metric(feature, splits,
    # shuffle, rng_seed) -> {inception_score_mean, inception_score_std}. Not installed in CI: skips.
    isc, key_mean, key_std = torch_fidelity_isc()
    seed = n * 1009 + c * 31 + splits + (shuffle_seed or 0)
    logits = (scale * np.random.default_rng(seed).standard_normal((n, c))).astype(dtype)
    theirs = isc(torch.from_numpy(logits), splits=splits, shuffle=shuffle_seed is not None,
                 rng_seed=2020 if shuffle_seed is None else shuffle_seed)
    ours = inception_score(logits, splits=splits, shuffle_seed=shuffle_seed)
    assert math.isfinite(theirs[key_mean])
    assert abs(ours.mean - theirs[key_mean]) <= 1e-10 * theirs[key_mean]
    assert abs(ours.std - theirs[key_std]) <= 1e-10 * max(theirs[key_mean], 1.0)


# --------------------------------------------------------------------------------------
# TF1 bilinear resize
# --------------------------------------------------------------------------------------


def tf1_resize_loop(img: np.ndarray, h_out: int, w_out: int) -> np.ndarray:
    """Reference written from TF 1.x resize_bilinear_op.cc (legacy, align_corners=False), one pixel at a time."""
    h_in, w_in = img.shape
    sy = np.float32(h_in) / np.float32(h_out)
    sx = np.float32(w_in) / np.float32(w_out)
    out = np.empty((h_out, w_out), np.float32)
    for i in range(h_out):
        yin = np.float32(i) * sy
        y0 = int(math.floor(yin))
        y1 = min(y0 + 1, h_in - 1)
        dy = np.float32(yin - np.float32(y0))
        for j in range(w_out):
            xin = np.float32(j) * sx
            x0 = int(math.floor(xin))
            x1 = min(x0 + 1, w_in - 1)
            dx = np.float32(xin - np.float32(x0))
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[i, j] = top + (bottom - top) * dy
    return out


@pytest.mark.parametrize("shape_in, shape_out", [((5, 7), (13, 4)), ((4, 4), (9, 9)), ((9, 6), (3, 5)), ((32, 32), (299, 299))])
def test_resize_matches_tf1_formula(shape_in, shape_out):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=shape_in).astype(np.float32)
    got = resize_bilinear_tf1(torch.from_numpy(img)[None, None], shape_out)[0, 0].numpy()
    assert got.shape == shape_out
    np.testing.assert_allclose(got, tf1_resize_loop(img, *shape_out), rtol=0, atol=1e-4)  # float32 rounding on 0..255


def test_resize_identities():
    x = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).reshape(2, 3, 6, 8)
    assert torch.equal(resize_bilinear_tf1(x, (6, 8)), x)
    # integer down-sampling by 2 samples pixels 0, 2, 4, ... exactly (no half-pixel offset)
    assert torch.equal(resize_bilinear_tf1(x, (3, 4)), x[:, :, ::2, ::2])
    const = torch.full((1, 3, 5, 5), 7.0)
    assert torch.equal(resize_bilinear_tf1(const, (11, 3)), torch.full((1, 3, 11, 3), 7.0))
    # and it is not torch's half-pixel bilinear interpolation
    up = resize_bilinear_tf1(x, (12, 16))
    assert not torch.allclose(up, torch.nn.functional.interpolate(x, size=(12, 16), mode="bilinear", align_corners=False))


def test_resize_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        resize_bilinear_tf1(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), (2, 2))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        resize_bilinear_tf1(torch.zeros(4, 4), (2, 2))


# --------------------------------------------------------------------------------------
# The network, with random weights of the real layout
# --------------------------------------------------------------------------------------

# From torch-fidelity's conversion table: 94 conv+batch-norm blocks, then the fc layer.
N_CONV_BLOCKS = 94
SPOT_SHAPES = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.weight": (32,),
    "Conv2d_1a_3x3.bn.bias": (32,),
    "Conv2d_1a_3x3.bn.running_mean": (32,),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch3x3dbl_1.conv.weight": (448, 2048, 1, 1),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def random_state_dict(seed: int = 0, *, with_num_batches_tracked: bool = False) -> dict[str, torch.Tensor]:
    """Random weights in the files' layout, He-scaled so activations neither vanish nor explode."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in TFInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            if with_num_batches_tracked:
                state[key] = torch.tensor(0)
            continue
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            state[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2.0 / fan_in)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith(("running_mean", "bn.bias")):
            state[key] = 0.1 * torch.randn(value.shape, generator=gen)
        elif key.endswith("bn.weight"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key == "fc.weight":
            state[key] = torch.randn(value.shape, generator=gen) / math.sqrt(value.shape[1])
        else:  # fc.bias
            state[key] = torch.randn(value.shape, generator=gen)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(random_state_dict(0), path)
    return path


@pytest.fixture(scope="module")
def model(weights_file):
    return load_inception(weights_file)


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(np.random.default_rng(6).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8))


def test_state_dict_layout():
    state = random_state_dict(0)
    assert len(state) == 5 * N_CONV_BLOCKS + 2  # conv.weight + 4 batch-norm tensors per block, fc.weight, fc.bias
    assert sum(k.endswith(".conv.weight") for k in state) == N_CONV_BLOCKS
    for key, shape in SPOT_SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_save_and_reload_round_trip(model, weights_file):
    saved = torch.load(weights_file, weights_only=True)
    loaded = model.state_dict()
    for key, value in saved.items():
        assert torch.equal(loaded[key], value), key
    assert not model.training
    assert all(not p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("variant", ["num_batches_tracked", "dataparallel_prefix"])
def test_accepts_layout_variants(tmp_path, variant):
    if variant == "num_batches_tracked":
        state = random_state_dict(1, with_num_batches_tracked=True)
    else:
        state = {f"module.{k}": v for k, v in random_state_dict(1).items()}
    path = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    model = load_inception(path)
    assert torch.equal(model.fc.weight, random_state_dict(1)["fc.weight"])


def test_output_shape_and_unbiased_logits(model, images):
    with torch.no_grad():
        out = model(images)
        pool3 = model.pool3(images)
    assert out.shape == (3, INCEPTION_NUM_CLASSES) and out.dtype == torch.float32
    assert pool3.shape == (3, 2048)
    assert torch.isfinite(out).all() and out.std() > 1e-3  # random weights still give varied logits
    # logits_unbiased: pool3 @ fc.weight.T, the fc bias (random, std 1 here) is not added
    torch.testing.assert_close(out, pool3 @ model.fc.weight.T)
    assert not torch.allclose(out, model.fc(pool3), atol=1e-2)


def test_batch_size_independence(model, images):
    with torch.no_grad():
        batch3 = model(images)
        singles = torch.cat([model(images[i : i + 1]) for i in range(3)])
    scale = batch3.abs().max().item()
    torch.testing.assert_close(singles, batch3, rtol=1e-4, atol=1e-4 * scale)  # float32 conv reassociation only
    logits = inception_logits(images.numpy(), model, batch_size=2)
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32 and logits.shape == (3, 1008)
    np.testing.assert_allclose(logits, batch3.numpy(), rtol=1e-4, atol=1e-4 * scale)


def test_float64_internal_dtype_agrees(weights_file, model, images):
    model64 = load_inception(weights_file, dtype=torch.float64)
    with torch.no_grad():
        out64 = model64(images[:1])
        out32 = model(images[:1])
    assert out64.dtype == torch.float64
    scale = out64.abs().max().item()
    torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4 * scale)  # float32 vs float64 rounding


def test_299_input_is_not_resampled(model, images):
    # an image already 299x299 goes through unchanged (TF's resize at scale 1 is the identity)
    big = resize_bilinear_tf1(images[:1].float(), (299, 299)).round().clamp(0, 255).to(torch.uint8)
    x = big.float()
    assert torch.equal(resize_bilinear_tf1(x, (299, 299)), x)
    with torch.no_grad():
        assert model(big).shape == (1, 1008)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_inception(tmp_path / "pt_inception-2015-12-05-6726825d.pth")


def test_non_torch_file_raises(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="could not be read"):
        load_inception(path)


def test_mismatched_keys_are_named(tmp_path):
    state = random_state_dict(2)
    del state["Mixed_6c.branch7x7_3.bn.running_var"]
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's 1000 ImageNet classes
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_inception(path)
    msg = str(err.value)
    assert "missing keys: Mixed_6c.branch7x7_3.bn.running_var" in msg
    assert "unexpected keys: AuxLogits.fc.weight" in msg
    assert "fc.weight: file (1000, 2048) vs expected (1008, 2048)" in msg


def test_not_a_state_dict_raises(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_inception(path)


def torch_fidelity_inception_class():
    """torch-fidelity's own ``FeatureExtractorInceptionV3`` class, or skip when torch-fidelity is absent.

    The package's ``__init__`` imports every feature extractor and so torchvision (not
    installed in CI), but feature_extractor_inceptionv3.py and what it imports
    (feature_extractor_base, helpers -> defaults, deprecations, interpolate_compat_tensorflow)
    need only torch. The installed files are imported unmodified by the ordinary import
    system under their real names; only the package's ``__init__`` is not run: the package
    module is created from its spec (``importlib.util.module_from_spec``, which sets
    ``__path__``) without ``exec_module``. Nothing is stubbed: torchvision is never imported
    or faked. ``sys.modules`` is restored afterwards, so later imports of torch_fidelity are
    unaffected (the loaded class keeps its own module globals).
    """
    import importlib
    import importlib.util
    import sys

    name = "torch_fidelity.feature_extractor_inceptionv3"
    if name in sys.modules:  # already imported for real (torchvision present)
        return sys.modules[name].FeatureExtractorInceptionV3
    spec = torch_fidelity_spec()
    had_torchvision = "torchvision" in sys.modules
    saved = {k: v for k, v in sys.modules.items() if k == "torch_fidelity" or k.startswith("torch_fidelity.")}
    try:
        sys.modules["torch_fidelity"] = importlib.util.module_from_spec(spec)  # package __init__ not executed
        cls = importlib.import_module(name).FeatureExtractorInceptionV3
    finally:
        for k in [k for k in sys.modules if k == "torch_fidelity" or k.startswith("torch_fidelity.")]:
            del sys.modules[k]
        sys.modules.update(saved)
    assert had_torchvision or "torchvision" not in sys.modules, "loading the Inception extractor imported torchvision"
    return cls


@pytest.fixture(scope="module")
def torch_fidelity_model(weights_file):
    cls = torch_fidelity_inception_class()
    # constructor: (name, features_list, feature_extractor_weights_path, feature_extractor_internal_dtype);
    # with a weights path it loads the file (strict load_state_dict) and never downloads
    return cls("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights_file))


@pytest.mark.parametrize("shape, seed", [((2, 3, 32, 32), 10), ((2, 3, 64, 48), 11)])
def test_network_agrees_with_torch_fidelity(model, torch_fidelity_model, shape, seed):
    # Independent implementation: torch-fidelity 0.4.0's FeatureExtractorInceptionV3 (the network
    # and TF1 resize behind its ISC/FID), loaded with the same random weights file. H, W != 299,
    # so both TF1 bilinear resizes (theirs: interpolate_compat_tensorflow.py) are exercised.
    # Not installed in CI: skips. Measured max |diff| / max |value|: 0 (bit-identical) for both
    # outputs and both shapes (torch 2.13 CPU, one thread).
    images = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8))
    with torch.no_grad():
        theirs_pool3, theirs_logits = torch_fidelity_model(images)
        ours_pool3 = model.pool3(images)
        ours_logits = model(images)
    assert theirs_logits.shape == (shape[0], INCEPTION_NUM_CLASSES) and theirs_pool3.shape == (shape[0], 2048)
    assert theirs_logits.std() > 1e-3  # random weights still give varied logits: not comparing zeros
    for ours, theirs in [(ours_pool3, theirs_pool3), (ours_logits, theirs_logits)]:
        scale = theirs.abs().max().item()
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * scale)  # float32 reassociation at most


def test_bad_images_raise(model):
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="repeat the channel"):
        model(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="RGB"):
        inception_logits(np.zeros((2, 1, 28, 28), np.uint8), model)
    with pytest.raises(TypeError, match="uint8"):
        inception_logits(np.zeros((2, 3, 28, 28), np.float32), model)
    with pytest.raises(TypeError, match="TFInceptionV3"):
        inception_logits(np.zeros((2, 3, 28, 28), np.uint8), torch.nn.Identity())
