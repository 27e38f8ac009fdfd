"""Tests of gangen.data: MNIST IDX files, CIFAR-10 pickles, image folders and tar archives.

Unit tests write tiny files in each format themselves (formats: the IDX description on
Yann LeCun's MNIST page; the CIFAR-10 page's python batches: a dict with b"data" uint8
(n, 3072) as R, G, B planes of 32x32 row-major, and b"labels"). Integration tests read
../shared/data and skip when it is absent.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gangen.data import (
    CIFAR10_CLASSES,
    LabeledImages,
    float_to_uint8,
    load_cifar10,
    load_dataset,
    load_image_folder,
    load_mnist,
)

# --------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding: 0x00 0x00 0x08 (unsigned byte) <ndim>, sizes as big-endian int32, data."""
    header = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, dtype=">i4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def write_mnist(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, *, gz: bool, dot_names: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    sep = "." if dot_names else "-"
    for what, idx, arr in (("images", "idx3", images), ("labels", "idx1", labels)):
        name = f"{prefix}-{what}{sep}{idx}-ubyte"
        data = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.fixture
def tiny_mnist():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=7).astype(np.uint8)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("subdir, dot_names", [("", False), ("mnist", False), ("MNIST/raw", False), ("", True)])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_formats(tmp_path, tiny_mnist, gz, subdir, dot_names, split):
    images, labels = tiny_mnist
    write_mnist(tmp_path / subdir, split, images, labels, gz=gz, dot_names=dot_names)
    out = load_mnist(tmp_path, split)
    assert isinstance(out, LabeledImages)
    assert out.images.dtype == np.uint8 and out.images.shape == (7, 1, 28, 28)
    assert out.labels.dtype == np.int64
    np.testing.assert_array_equal(out.images[:, 0], images)
    np.testing.assert_array_equal(out.labels, labels)


def test_load_dataset_dispatches_by_name(tmp_path, tiny_mnist):
    images, labels = tiny_mnist
    write_mnist(tmp_path, "test", images, labels, gz=True)
    out = load_dataset("mnist", tmp_path, "test")
    np.testing.assert_array_equal(out.images[:, 0], images)
    np.testing.assert_array_equal(out.labels, labels)
    with pytest.raises(FileNotFoundError):  # the CIFAR-10 loader looks for CIFAR-10 files
        load_dataset("cifar10", tmp_path, "test")
    with pytest.raises(ValueError, match="dataset"):
        load_dataset("svhn", tmp_path)


def test_gzip_detected_from_content(tmp_path, tiny_mnist):
    images, labels = tiny_mnist
    write_mnist(tmp_path, "test", images, labels, gz=False)
    raw = tmp_path / "t10k-images-idx3-ubyte"
    raw.write_bytes(gzip.compress(raw.read_bytes()))  # gzip content under the raw name
    np.testing.assert_array_equal(load_mnist(tmp_path, "test").images[:, 0], images)


def test_mnist_missing_file(tmp_path, tiny_mnist):
    write_mnist(tmp_path, "train", *tiny_mnist, gz=True)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist(tmp_path, "validation")


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda b: b"\x12\x34" + b[2:], "not an IDX file"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "element type 0x0d"),
        (lambda b: b[:3] + b"\x02" + b[4:], "3 dimensions; the header says 2"),
        (lambda b: b[:-5], "file holds"),
    ],
)
def test_mnist_bad_idx(tmp_path, tiny_mnist, corrupt, match):
    write_mnist(tmp_path, "train", *tiny_mnist, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path)


def test_mnist_inconsistent_content(tmp_path, tiny_mnist):
    images, labels = tiny_mnist
    write_mnist(tmp_path / "a", "train", images, labels[:5], gz=False)
    with pytest.raises(ValueError, match="7 images but .* 5 labels"):
        load_mnist(tmp_path / "a")
    write_mnist(tmp_path / "b", "train", images, np.full(7, 10, np.uint8), gz=False)
    with pytest.raises(ValueError, match="labels are 0..9"):
        load_mnist(tmp_path / "b")
    write_mnist(tmp_path / "c", "train", images[:, :27, :27], labels, gz=False)
    with pytest.raises(ValueError, match="28x28"):
        load_mnist(tmp_path / "c")


def test_mnist_full_size_must_match_published_hash(tmp_path):
    # a full-size test set (10,000 images) that is not MNIST: refused unless verify=False
    images = np.zeros((10000, 28, 28), np.uint8)
    labels = np.zeros(10000, np.uint8)
    write_mnist(tmp_path, "test", images, labels, gz=False)
    with pytest.raises(ValueError, match="differs from the published MNIST t10k-images"):
        load_mnist(tmp_path, "test")
    assert load_mnist(tmp_path, "test", verify=False).images.shape == (10000, 1, 28, 28)


# --------------------------------------------------------------------------------------
# CIFAR-10: pickles
# --------------------------------------------------------------------------------------


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    obj = {b"batch_label": b"batch", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * n}
    return pickle.dumps(obj, protocol=2), data, labels


def write_cifar_pickles(folder: Path, sizes=(2, 3, 1, 2, 2), n_test=3) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, (name, n) in enumerate(zip(names, list(sizes) + [n_test])):
        raw, data, labels = cifar_batch(n, seed)
        (folder / name).write_bytes(raw)
        written[name] = (data, labels)
    return written


def expected_split(written, split):
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    data = np.concatenate([written[n][0] for n in names])
    labels = sum((written[n][1] for n in names), [])
    return data, np.array(labels)


@pytest.mark.parametrize("subdir", ["", "cifar-10-batches-py"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_pickles(tmp_path, subdir, split):
    written = write_cifar_pickles(tmp_path / subdir)
    out = load_cifar10(tmp_path, split)
    data, labels = expected_split(written, split)
    assert out.images.dtype == np.uint8 and out.images.shape == (len(labels), 3, 32, 32)
    assert out.labels.dtype == np.int64
    np.testing.assert_array_equal(out.labels, labels)
    # channel c, row r, column k is data[c·1024 + r·32 + k]
    assert out.images[0, 1, 2, 5] == data[0, 1 * 1024 + 2 * 32 + 5]
    np.testing.assert_array_equal(out.images.reshape(len(labels), -1), data)


def test_cifar_pickle_tar(tmp_path):
    src = tmp_path / "src"
    written = write_cifar_pickles(src / "cifar-10-batches-py")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with tarfile.open(data_dir / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    for split in ("train", "test"):
        out = load_cifar10(data_dir, split)
        data, labels = expected_split(written, split)
        np.testing.assert_array_equal(out.images.reshape(len(labels), -1), data)
        np.testing.assert_array_equal(out.labels, labels)


def test_cifar_pickle_with_legacy_numpy_module_names(tmp_path):
    # the official batches were pickled by numpy 1.x: globals under numpy.core.multiarray
    raw, data, labels = cifar_batch(4, 0)
    legacy = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"cnumpy.core.multiarray\n_reconstruct" in legacy
    (tmp_path / "test_batch").write_bytes(legacy)
    out = load_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(out.images.reshape(4, -1), data)
    np.testing.assert_array_equal(out.labels, labels)


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_pickle_protocols(tmp_path, protocol):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"labels": [1, 2, 3], b"data": data}, protocol=protocol))
    np.testing.assert_array_equal(load_cifar10(tmp_path, "test").images.reshape(3, -1), data)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickle_refuses_code(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load posix.getcwd|refusing to load nt.getcwd"):
        load_cifar10(tmp_path, "test")


def test_cifar_pickle_bad_content(tmp_path):
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2))
    with pytest.raises(ValueError, match=r"\(n, 3072\)"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, protocol=2))
    with pytest.raises(ValueError, match="labels are 0..9"):
        load_cifar10(tmp_path, "test")
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a CIFAR-10 python batch"):
        load_cifar10(tmp_path, "test")


def test_cifar_missing_batch(tmp_path):
    write_cifar_pickles(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        load_cifar10(tmp_path, "train")


def test_cifar_nothing_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CIFAR-10 test data"):
        load_cifar10(tmp_path, "test")


# --------------------------------------------------------------------------------------
# CIFAR-10: image folders and tar archives of them
# --------------------------------------------------------------------------------------


def encode(img: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buf.getvalue()


def folder_images(seed=0, classes=("cat", "airplane", "truck"), per_class=2):
    """{(class, file name): HxWx3 uint8 image}."""
    rng = np.random.default_rng(seed)
    return {(c, f"{i:04d}.png"): rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for c in classes for i in range(per_class)}


def write_folder(root: Path, split: str, imgs, fmt="PNG"):
    for (cls, name), img in imgs.items():
        path = root / split / cls / (name if fmt == "PNG" else name.replace(".png", ".jpg"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(img, fmt))


def expected_folder(imgs):
    order = sorted(imgs, key=lambda k: (CIFAR10_CLASSES.index(k[0]), k[1]))
    return np.stack([imgs[k].transpose(2, 0, 1) for k in order]), np.array([CIFAR10_CLASSES.index(k[0]) for k in order])


@pytest.mark.parametrize("nested", [False, True])
def test_cifar_image_folders_png(tmp_path, nested):
    imgs = folder_images()
    write_folder(tmp_path / "CIFAR-10-images" if nested else tmp_path, "test", imgs)
    out = load_cifar10(tmp_path, "test")
    images, labels = expected_folder(imgs)
    np.testing.assert_array_equal(out.labels, labels)  # airplane=0, cat=3, truck=9: standard order
    np.testing.assert_array_equal(out.images, images)  # PNG is lossless


def test_cifar_image_folders_jpeg(tmp_path):
    imgs = {k: np.full((32, 32, 3), 40 * i, np.uint8) for i, k in enumerate(folder_images())}
    write_folder(tmp_path, "train", imgs, fmt="JPEG")
    out = load_cifar10(tmp_path, "train")
    images, labels = expected_folder(imgs)
    np.testing.assert_array_equal(out.labels, labels)
    assert np.abs(out.images.astype(int) - images).max() <= 3  # flat images survive JPEG almost exactly


def test_image_folder_errors(tmp_path):
    write_folder(tmp_path / "a", "train", folder_images(classes=("cat", "unicorn")))
    with pytest.raises(ValueError, match="unicorn"):
        load_cifar10(tmp_path / "a", "train")
    (tmp_path / "b" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "b" / "train" / "cat" / "0.png").write_bytes(encode(np.zeros((30, 30, 3), np.uint8), "PNG"))
    with pytest.raises(ValueError, match="expected 32x32 images; got 30x30"):
        load_cifar10(tmp_path / "b", "train")
    (tmp_path / "b" / "train" / "cat" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_cifar10(tmp_path / "b", "train")


def test_load_image_folder_generic(tmp_path):
    imgs = folder_images(classes=("zebra", "apple"))
    write_folder(tmp_path, "x", imgs)
    out = load_image_folder(tmp_path / "x")
    assert out.labels.tolist() == [0, 0, 1, 1]  # sorted names: apple=0, zebra=1
    np.testing.assert_array_equal(out.images[0], imgs[("apple", "0000.png")].transpose(2, 0, 1))


def write_image_tar(tar_path: Path, imgs_by_split, checksums: bool | str = False):
    sums = []
    with tarfile.open(tar_path, "w:gz") as tar:
        for split, imgs in imgs_by_split.items():
            for (cls, name), img in imgs.items():
                raw = encode(img, "PNG")
                info = tarfile.TarInfo(f"CIFAR-10-images/{split}/{cls}/{name}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
                sums.append(f"{hashlib.sha256(raw).hexdigest()}  {split}/{cls}/{name}")
    if checksums:
        if checksums == "tampered":
            sums[0] = "0" * 64 + sums[0][64:]
        stem = tar_path.name.replace(".tar.gz", "")
        (tar_path.parent / f"{stem}.sha256.gz").write_bytes(gzip.compress("\n".join(sums).encode()))


@pytest.mark.parametrize("checksums", [False, True])
def test_cifar_image_tar(tmp_path, checksums):
    by_split = {"train": folder_images(0), "test": folder_images(1, classes=("ship", "dog"), per_class=3)}
    write_image_tar(tmp_path / "cifar10-jpeg-q75.tar.gz", by_split, checksums=checksums)
    for split, imgs in by_split.items():
        out = load_cifar10(tmp_path, split)
        images, labels = expected_folder(imgs)
        np.testing.assert_array_equal(out.labels, labels)
        np.testing.assert_array_equal(out.images, images)


def test_cifar_image_tar_checksum_mismatch(tmp_path):
    by_split = {"train": folder_images(0)}
    write_image_tar(tmp_path / "cifar10-pngs.tar.gz", by_split, checksums="tampered")
    with pytest.raises(ValueError, match="sha256 mismatch for 1 images"):
        load_cifar10(tmp_path, "train")
    assert load_cifar10(tmp_path, "train", verify=False).images.shape == (6, 3, 32, 32)


# --------------------------------------------------------------------------------------
# float_to_uint8
# --------------------------------------------------------------------------------------


def test_float_to_uint8():
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, -3.0, 3.0])
    # (x + 1)·127.5 rounded half to even: -0.5 -> 63.75 -> 64; 0 -> 127.5 -> 128; 0.5 -> 191.25 -> 191
    assert float_to_uint8(x).tolist() == [0, 64, 128, 191, 255, 0, 255]
    assert float_to_uint8(torch.tensor([0.0, 0.5, 1.0]), value_range=(0.0, 1.0)).tolist() == [0, 128, 255]
    assert float_to_uint8(np.zeros((2, 3, 4, 4), np.float32)).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="finite"):
        float_to_uint8(np.array([np.nan]))
    with pytest.raises(TypeError, match="floating-point"):
        float_to_uint8(np.array([1, 2]))
    with pytest.raises(ValueError, match="hi > lo"):
        float_to_uint8(np.zeros(2), value_range=(1.0, 1.0))


# --------------------------------------------------------------------------------------
# Integration: the real files in ../shared/data
# --------------------------------------------------------------------------------------


@pytest.mark.data
def test_real_mnist(shared_data):
    train = load_mnist(shared_data / "mnist", "train")  # verify=True: published sha256 checked
    test = load_mnist(shared_data / "mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    # per-digit counts of the MNIST test set, as published (e.g. torchvision/TF dataset docs)
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the well-known first training digits
    assert train.images.max() == 255 and train.images.min() == 0


@pytest.mark.data
def test_real_cifar10_test_split(shared_data):
    # reads cifar10-jpeg-q75.tar.gz in place, checking each image's sha256 (about 2 s)
    test = load_cifar10(shared_data / "cifar10", "test")
    assert test.images.shape == (10000, 3, 32, 32) and test.images.dtype == np.uint8
    assert np.bincount(test.labels).tolist() == [1000] * 10  # CIFAR-10: 1,000 test images per class


@pytest.mark.data
@pytest.mark.slow
def test_real_cifar10_train_split(shared_data):
    # decodes all 50,000 training JPEGs (about 5 s on this machine)
    train = load_cifar10(shared_data / "cifar10", "train")
    assert train.images.shape == (50000, 3, 32, 32)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    # per-channel means of CIFAR-10 train, widely quoted for normalisation: 0.4914, 0.4822, 0.4465
    # (x 255 = 125.3, 123.0, 113.9); the JPEG re-encoding moves them little
    np.testing.assert_allclose(train.images.mean(axis=(0, 2, 3)), [125.3, 123.0, 113.9], atol=1.5)
