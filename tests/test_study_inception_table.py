"""Tests of gangen.studies.inception_table (Table 1: DCGAN vs MIX+DCGAN vs 5x DCGAN, WGAN vs MIX+WGAN).

Hermetic: the MNIST run uses tiny synthetic IDX files and the CIFAR-10 run tiny synthetic
pickle batches, both written here, and the CIFAR-10 run scores with a TF Inception-v3 of
random weights (the real weights cannot be had on these machines) saved to tmp_path.
"""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gangen.data import load_cifar10
from gangen.metrics.inception import TFInceptionV3, inception_logits, inception_score, load_inception
from gangen.mixgan import train
from gangen.nn.players import DCGANDiscriminator, DCGANGenerator, count_parameters
from gangen.studies.inception_table import (
    MODELS,
    PAPER_TABLE1,
    STUDY,
    InceptionTableConfig,
    _eval_seed,
    _gan_config,
    _model_rows,
    _subset,
    cells,
    curve_steps,
    decode_grid,
    encode_grid,
    large_width,
    parameter_counts,
)
from gangen.studies.runner import check_group_independent, main, make_cell, resolve_config, run_study

# --------------------------------------------------------------------------- synthetic data


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding: magic 0x0000 0x08 <ndim>, big-endian int32 sizes, then uint8 data (the MNIST format)."""
    head = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">i4").tobytes()
    return head + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


def digit_like(n: int, seed: int, *, channels: int = 1, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, C, side, side) whose class k (0..9) is a bright bar at rows 2k+4..2k+6, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, channels, side, side)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, :, 2 * k + 4:2 * k + 7, 4:side - 4] = 230
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mnist")
    for prefix, n, seed in (("train", 300, 0), ("t10k", 100, 1)):
        images, labels = digit_like(n, seed)
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images[:, 0])))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


def tiny(data_dir: Path, **overrides) -> InceptionTableConfig:
    return resolve_config(STUDY, "tiny", {"data_dir": str(data_dir), **overrides})


@pytest.fixture(scope="module")
def tiny_run(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("inception_table")
    config = tiny(mnist_dir, classifier_cache=str(out / "classifier"))
    return out, config, run_study(STUDY, config, out, device="cpu", progress=False, preset="tiny")


# --------------------------------------------------------------------------- config


def test_data_dir_is_required_with_a_clear_message(capsys):
    with pytest.raises(ValueError, match="--data-dir"):
        resolve_config(STUDY, "quick")
    with pytest.raises(SystemExit):
        main(STUDY, ["--preset", "tiny", "--out", "/nonexistent"])
    assert "--data-dir" in capsys.readouterr().err


def test_dataset_defaults_mnist_and_cifar10_table1_setting(tmp_path):
    mnist = InceptionTableConfig(data_dir="d")
    assert (mnist.scorer, mnist.conditional, mnist.width, mnist.n_score_samples) == ("classifier", False, 16, 5000)
    with pytest.raises(ValueError, match="--inception-weights"):
        InceptionTableConfig(dataset="cifar10", data_dir="d")
    cifar = InceptionTableConfig(dataset="cifar10", data_dir="d", inception_weights="w.pth")
    # PAPER.md, Table 1: 50,000 samples, 10 splits, Inception Score; label-conditional DCGAN rows;
    # WGAN: clip 0.01, RMSProp 5e-5, n_critic 5, batch 64; MIX+GAN T = 5, Adam lr 1e-4 beta1 0.5 (authors' code).
    assert (cifar.scorer, cifar.n_score_samples, cifar.splits, cifar.conditional, cifar.width) == ("inception", 50000, 10, True, 64)
    w = _gan_config(cifar, "mix_wgan", 10, seed=0)
    assert (w.loss, w.clip, w.optimizer, w.lr_d, w.lr_g, w.n_critic, w.batch_size, w.n_components, w.num_classes) == (
        "wasserstein", 0.01, "rmsprop", 5e-5, 5e-5, 5, 64, 5, 0)
    d = _gan_config(cifar, "dcgan", 10, seed=0)
    assert (d.loss, d.optimizer, d.lr_g, d.beta1, d.n_components, d.num_classes, d.width) == (
        "nonsaturating", "adam", 1e-4, 0.5, 1, 10, 64)
    assert _gan_config(cifar, "dcgan_5x", 10, seed=0).width == cifar.width_large
    with pytest.raises(ValueError, match="models"):
        InceptionTableConfig(data_dir="d", models=("dcgan", "biggan"))


@pytest.mark.parametrize("shape,width,classes", [((1, 28, 28), 16, 0), ((3, 32, 32), 8, 10)])
def test_large_width_has_about_five_times_the_parameters(shape, width, classes):
    def total(w: int) -> int:  # independent count: build the real modules
        g = DCGANGenerator(shape, latent_dim=100, width=w, num_classes=classes)
        d = DCGANDiscriminator(shape, width=w, num_classes=classes)
        return count_parameters(g) + count_parameters(d)

    assert parameter_counts(shape, width, latent_dim=100, num_classes=classes) == (
        count_parameters(DCGANGenerator(shape, latent_dim=100, width=width, num_classes=classes)),
        count_parameters(DCGANDiscriminator(shape, width=width, num_classes=classes)))
    w5 = large_width(shape, width, factor=5, latent_dim=100, num_classes=classes)
    target = 5 * total(width)
    gap = abs(total(w5) - target)
    assert gap <= abs(total(w5 - 1) - target) and gap <= abs(total(w5 + 1) - target)  # the closest width
    assert abs(total(w5) / target - 1) < 0.05


def test_grid_encoding_round_trips():
    x = np.random.default_rng(0).integers(0, 256, size=(3, 3, 32, 32), dtype=np.uint8)
    assert np.array_equal(decode_grid(encode_grid(x)), x)


def test_shorter_cell_is_the_prefix_of_the_longer_run(mnist_dir):
    # Training is deterministic, so steps = 2 reproduces the first 2 iterations of steps = 3
    # exactly (same history rows, logged every iteration): what a checkpoint score stands for.
    config = tiny(mnist_dir, log_every=1)
    real = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, size=(50, 1, 28, 28)).astype(np.float32))
    short = train(_gan_config(config, "mix_dcgan", 2, seed=7), real).history
    long = train(_gan_config(config, "mix_dcgan", 3, seed=7), real).history
    cols = ["step", "d_loss", "g_loss", "value"]
    pd.testing.assert_frame_equal(short[cols], long[cols].iloc[:2])


def test_curve_cells_carry_their_checkpoints():
    config = InceptionTableConfig(data_dir="d", dcgan_steps=150, wgan_steps=40, curve_fracs=(0.0, 0.2, 0.5, 0.8))
    assert curve_steps(config, "dcgan") == (0, 30, 75, 120) and curve_steps(config, "mix_wgan") == ()
    grid = cells(config)
    assert len(grid) == 1 + config.n_seeds * len(MODELS)  # one training run per (model, seed), no retrained checkpoints
    by_model = {c["model"]: c.as_dict() for c in grid if c["rep"] == 0}
    assert by_model["mix_dcgan"] == {"model": "mix_dcgan", "steps": 150, "rep": 0, "curve_steps": "0,30,75,120"}
    assert by_model["dcgan_5x"] == {"model": "dcgan_5x", "steps": 150, "rep": 0}  # unchanged params (cache reuse)


def test_checkpoint_scores_equal_shorter_runs(mnist_dir, tmp_path):
    # Figure 3 is scored during the one training run (train's callback), which must not disturb
    # it: the score at checkpoint t equals the final score of a separate run of t iterations
    # (what the former design retrained), and the cell's other rows equal those of the same run
    # without checkpoints, exactly.
    config = tiny(mnist_dir, classifier_cache=str(tmp_path / "clf"), dcgan_steps=4, curve_fracs=(0.0, 0.25, 0.5))
    cell = next(c for c in cells(config) if c["model"] == "mix_dcgan" and c["rep"] == 1)
    assert cell["curve_steps"] == "0,1,2"
    rows = _model_rows(cell, config, "cpu")
    curve = {r["step"]: r["value"] for r in rows if r["metric"] == "curve_score"}
    assert sorted(curve) == [0, 1, 2]
    for t in (0, 1, 2):
        short = _model_rows(make_cell(config.seed, {"model": "mix_dcgan", "steps": t, "rep": 1}), config, "cpu")
        assert curve[t] == next(r["value"] for r in short if r["metric"] == "score"), t
    assert len(set(curve.values())) > 1  # the checkpoints differ: the test can tell them apart
    plain = _model_rows(make_cell(config.seed, {"model": "mix_dcgan", "steps": 4, "rep": 1}), config, "cpu")
    assert [r for r in rows if not r["metric"].startswith("curve_")] == plain


# --------------------------------------------------------------------------- MNIST smoke run


def test_tiny_mnist_run_writes_table_figures_and_sane_numbers(tiny_run):
    out, config, result = tiny_run
    res_dir = out / "studies" / "inception_table"
    for name in ("results.csv", "config.json", "summary.json"):
        assert (res_dir / name).is_file(), name
    for stem in ("fig3", "fig4", "samples"):
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"inception_table_{stem}.{ext}").stat().st_size > 1000
    saved = json.loads((res_dir / "config.json").read_text())
    assert saved["config"]["width_large"] == config.width_large and saved["config"]["scorer"] == "classifier"
    assert list((out / "classifier").glob("classifier-*.pt")), "the scoring classifier is cached"
    t = result.table
    scores = t[t.metric == "score"]
    # real cell + 5 models x 2 seeds, each trained once
    assert len(scores) == 1 + 5 * 2 and len(result.table.groupby(["model", "rep"])) == 1 + 5 * 2
    assert scores.value.between(1.0, 10.0).all()  # a 10-class score lies in [1, 10]
    # Figure 3: dcgan and mix_dcgan scored at iterations 0 and 2 (curve_fracs 0, 0.5 of 3) of each run
    curve = t[t.metric == "curve_score"]
    assert sorted(curve.groupby(["model", "rep"]).step.apply(tuple)) == [(0, 2)] * 4
    assert curve.value.between(1.0, 10.0).all()
    for model in ("dcgan", "mix_dcgan"):  # summary: checkpoint steps and the final one, each over every seed
        assert result.summary["curves"][model]["step"] == [0, 2, config.dcgan_steps]
        assert result.summary["curves"][model]["n_seeds"] == [config.n_seeds] * 3
    s = result.summary
    acc = s["classifier_test_accuracy"]
    assert 0.0 <= acc <= 1.0
    rows = s["rows"]
    assert set(rows) == {*MODELS, "real"}
    # MIX models hold T copies of the base players; the plain DCGAN one.
    assert rows["mix_dcgan"]["params_generator"] == config.n_components * rows["dcgan"]["params_generator"]
    assert rows["dcgan_5x"]["width"] == config.width_large > config.width
    for model in MODELS:
        assert rows[model]["paper_cifar10_inception"] == list(PAPER_TABLE1[model][:2])
    assert {"mix_dcgan_minus_dcgan", "mix_wgan_minus_wgan"} <= set(s["comparisons"])
    c = s["comparisons"]["mix_dcgan_minus_dcgan"]
    assert np.allclose(c["diffs"], np.array(rows["mix_dcgan"]["scores"]) - np.array(rows["dcgan"]["scores"]))
    md = (out / "figures" / "inception_table_table1.md").read_text()
    assert "7.72" in md and "different data set and scorer" in md and "MNIST" in md
    # history rows of the final cells (Figure 4), sample grids for rep 0 (Figure 2)
    hist = t[(t.metric == "train_value") & (t.model == "mix_wgan")]
    assert sorted(hist.step.unique()) == list(range(config.wgan_steps))
    grids = t[t.metric == "sample_grid"]
    assert len(grids) == 1 + 5
    assert decode_grid(grids.grid_zb64.iloc[1]).shape == (config.n_grid, 1, 28, 28)
    weights = t[(t.metric == "mixture_weight_g") & (t.model == "mix_dcgan")].groupby("rep")["value"].sum()
    assert np.allclose(weights, 1.0)


def test_resume_recomputes_nothing_and_plot_only_redraws(tiny_run, capsys):
    out, config, result = tiny_run
    again = run_study(STUDY, config, out, device="cpu", progress=False, preset="tiny")
    assert again.n_computed == 0
    pd.testing.assert_frame_equal(again.table, result.table)
    main(STUDY, ["--plot-only", "--out", str(out)])
    assert "redrew" in capsys.readouterr().err


def test_group_independent(mnist_dir):
    check_group_independent(STUDY, tiny(mnist_dir, models=("mix_dcgan",), n_seeds=1), n_groups=2)


# --------------------------------------------------------------------------- CIFAR-10 smoke run


def test_cifar10_inception_pipeline_with_random_weights(tmp_path):
    data = tmp_path / "cifar"
    data.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images, labels = digit_like(12, i, channels=3, side=32)
        batch = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}
        (data / name).write_bytes(pickle.dumps(batch, protocol=2))
    weights = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(TFInceptionV3().state_dict(), weights)
    config = resolve_config(STUDY, "tiny", {
        "dataset": "cifar10", "data_dir": str(data), "inception_weights": str(weights),
        "models": ("dcgan", "mix_wgan"), "n_seeds": 1, "n_score_samples": 4, "splits": 2, "curve_models": (),
        "score_batch_size": 4, "n_grid": 2})
    assert config.scorer == "inception" and config.conditional
    out = tmp_path / "out"
    result = run_study(STUDY, config, out, device="cpu", progress=False)
    scores = result.table[result.table.metric == "score"]
    # 2 images per split: 1 <= IS <= 2 (up to float64 rounding)
    assert len(scores) == 3 and scores.value.between(1.0 - 1e-12, 2.0 + 1e-12).all(), scores.value.tolist()
    # The real-data row is the Inception Score of the study's subset of training images, recomputed here.
    x, _ = load_cifar10(data, "train")
    idx = _subset(len(x), config.n_score_samples, _eval_seed(config, "real", 0))
    expected = inception_score(inception_logits(x[idx], load_inception(weights)), splits=2)
    assert scores[scores.model == "real"].value.iloc[0] == pytest.approx(expected.mean, rel=1e-12)
    assert "classifier_test_accuracy" not in set(result.table.metric)
    assert result.summary["rows"]["real"]["label"] == "Real data"
    assert (out / "figures" / "inception_table_samples.png").is_file()
    grid = result.table[(result.table.metric == "sample_grid") & (result.table.model == "dcgan")].grid_zb64.iloc[0]
    assert decode_grid(grid).shape == (2, 3, 32, 32)
