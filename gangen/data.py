"""Real image data sets from local files: MNIST (IDX) and CIFAR-10 (python pickles, image folders).

Nothing is downloaded: every loader takes the directory the user gives (``--data-dir``).
Loaders return :class:`LabeledImages`: ``images`` uint8 of shape (N, C, H, W) and
``labels`` int64 of shape (N,); unpack it as ``images, labels = load_mnist(...)``.

Formats read
------------
- MNIST: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (also ``images.idx3-ubyte``),
  raw or gzip-compressed (detected from the bytes, not the name), in ``data_dir``,
  ``data_dir/mnist`` or ``data_dir/MNIST/raw`` (torchvision's layout).
- CIFAR-10: the python pickle batches (``data_batch_1..5``, ``test_batch``, in
  ``data_dir`` or ``data_dir/cifar-10-batches-py``, or inside ``cifar-10-python.tar.gz``
  read in place); image folders ``<split>/<class>/*.png|jpg`` (in ``data_dir`` or one level
  below, e.g. ``CIFAR-10-images/``); or a ``*cifar*.tar.gz`` of such folders, read in place
  without extracting (e.g. ``cifar10-jpeg-q75.tar.gz``).

Pixel decoding of PNG/JPEG uses Pillow (installed with matplotlib); it is imported only
when image files are read.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gangen._validation import check_choice, is_torch_tensor

__all__ = [
    "LabeledImages",
    "load_mnist",
    "load_cifar10",
    "load_dataset",
    "DATASETS",
    "load_image_folder",
    "float_to_uint8",
    "CIFAR10_CLASSES",
    "MNIST_SHA256",
]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# sha256 of the *uncompressed* published MNIST files. Their first 8 and last 4 hex digits
# are those listed in shared/data/README.md; the full digests were computed here from
# ../shared/data/mnist (byte-identical to the published files, per that README).
MNIST_SHA256 = {
    "train-images": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_MNIST_COUNT = {"train": 60000, "test": 10000}
_CIFAR_COUNT = {"train": 50000, "test": 10000}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class LabeledImages(NamedTuple):
    """Images and their class labels (unpackable: ``images, labels = ...``)."""

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


# --------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8}  # MNIST uses only unsigned bytes


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file name says
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path} looks gzip-compressed but cannot be decompressed ({exc})") from exc
    return raw


def _parse_idx(data: bytes, path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file: magic 0x0000 <type> <ndim>, big-endian int32 sizes, then the data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path} is not an IDX file: its first bytes {data[:4].hex()} are not the magic 0000<type><ndim>")
    type_code, file_ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: IDX element type 0x{type_code:02x} unsupported (MNIST uses 0x08, unsigned byte)")
    if file_ndim != ndim:
        raise ValueError(f"{path}: expected an IDX file with {ndim} dimensions; the header says {file_ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes)")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    n_items = int(np.prod(shape))
    if len(data) != header + n_items:
        raise ValueError(f"{path}: IDX header says shape {shape} ({n_items} bytes of data) but the file holds {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find_mnist_file(data_dir: Path, stem: str, kind: str) -> Path:
    """Locate e.g. train-images-idx3-ubyte[.gz] (or train-images.idx3-ubyte) under data_dir."""
    prefix, what = stem.split("-")
    idx = "idx3" if what == "images" else "idx1"
    names = [f"{prefix}-{what}-{idx}-ubyte", f"{prefix}-{what}.{idx}-ubyte"]
    folders = [data_dir, data_dir / "mnist", data_dir / "MNIST" / "raw"]
    tried = []
    for folder in folders:
        for name in names:
            for suffix in ("", ".gz"):
                candidate = folder / (name + suffix)
                tried.append(str(candidate))
                if candidate.is_file():
                    return candidate
    raise FileNotFoundError(f"MNIST {kind} file not found; looked for: {', '.join(tried[:4])} (and in mnist/, MNIST/raw/)")


def load_mnist(data_dir: str | os.PathLike, split: str = "train", *, verify: bool = True) -> LabeledImages:
    """MNIST digits from the original IDX files (raw or gzip) in ``data_dir``.

    Parameters
    ----------
    data_dir : folder holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]`` (or ``mnist/``,
        ``MNIST/raw/`` below it).
    split : "train" (60,000 images) or "test" (10,000).
    verify : always checked: IDX magic numbers (0x00000803 images, 0x00000801 labels),
        28x28 images, as many labels as images, labels in 0..9. With ``verify=True`` and
        files of the published size, the sha256 of the uncompressed bytes must equal the
        published file's (:data:`MNIST_SHA256`; a different data set of the same format,
        e.g. Fashion-MNIST, is refused). Smaller files (subsets) skip the hash check.

    Returns
    -------
    LabeledImages: images uint8 (N, 1, 28, 28), labels int64 (N,), in file order.
    """
    check_choice(split, ("train", "test"), "split")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST data directory {root} does not exist")
    prefix = "train" if split == "train" else "t10k"
    img_path = _find_mnist_file(root, f"{prefix}-images", "images")
    lab_path = _find_mnist_file(root, f"{prefix}-labels", "labels")
    img_bytes, lab_bytes = _read_maybe_gzip(img_path), _read_maybe_gzip(lab_path)
    images = _parse_idx(img_bytes, img_path, ndim=3)  # (N, 28, 28)
    labels = _parse_idx(lab_bytes, lab_path, ndim=1)  # (N,)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{img_path}: MNIST images are 28x28; got {images.shape[1]}x{images.shape[2]}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} holds {images.shape[0]} images but {lab_path} holds {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: MNIST labels are 0..9; found {int(labels.max())}")
    if verify and images.shape[0] == _MNIST_COUNT[split]:
        for path, content, key in ((img_path, img_bytes, f"{prefix}-images"), (lab_path, lab_bytes, f"{prefix}-labels")):
            digest = hashlib.sha256(content).hexdigest()
            if digest != MNIST_SHA256[key]:
                raise ValueError(
                    f"{path}: uncompressed sha256 {digest} differs from the published MNIST {key} "
                    f"({MNIST_SHA256[key]}); pass verify=False to load it anyway"
                )
    return LabeledImages(images[:, None, :, :].copy(), labels.astype(np.int64))


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR-10 batches: allows numpy array reconstruction and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batches hold only numpy arrays and lists; refusing to load {module}.{name}")


def _unpickle_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 3, 32, 32), labels int64 (n,)) from one CIFAR-10 python batch."""
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:
        raise ValueError(f"{where} is not a CIFAR-10 python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{where} is not a CIFAR-10 python batch: expected a dict, got {type(obj).__name__}")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"{where} is not a CIFAR-10 python batch: keys {sorted(d)} lack 'data' and 'labels'")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{where}: 'data' must be uint8 of shape (n, 3072); got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{where}: {data.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{where}: CIFAR-10 labels are 0..9; found range {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels  # rows are R(1024) G(1024) B(1024), row-major


def _batch_names(split: str) -> list[str]:
    return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> LabeledImages:
    return LabeledImages(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def _load_cifar_pickles(folder: Path, split: str) -> LabeledImages:
    parts = []
    for name in _batch_names(split):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch {path} is missing (a {split} split needs {', '.join(_batch_names(split))})")
        parts.append(_unpickle_batch(path.read_bytes(), str(path)))
    return _concat(parts)


def _load_cifar_pickle_tar(tar_path: Path, split: str) -> LabeledImages:
    wanted = _batch_names(split)
    found: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in wanted:
                raw = tar.extractfile(member).read()  # type: ignore[union-attr]
                found[base] = _unpickle_batch(raw, f"{tar_path}:{member.name}")
    missing = [w for w in wanted if w not in found]
    if missing:
        raise ValueError(f"{tar_path} lacks the CIFAR-10 batches {missing}")
    return _concat([found[w] for w in wanted])


def _decode_image(raw: bytes, where: str) -> np.ndarray:
    from PIL import Image  # Pillow: a dependency of matplotlib

    try:
        with Image.open(io.BytesIO(raw)) as im:
            arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
    except Exception as exc:
        raise ValueError(f"{where} is not a readable image ({type(exc).__name__}: {exc})") from exc
    return arr.transpose(2, 0, 1)  # (3, H, W)


def _class_index(names: list[str], classes: tuple[str, ...] | None, where: str) -> dict[str, int]:
    """Map folder names to label indices: the given class order, else sorted names."""
    if classes is None:
        return {c: i for i, c in enumerate(sorted(names))}
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"{where}: class folders {unknown} are not among the expected classes {list(classes)}")
    return {c: i for i, c in enumerate(classes)}


def _stack(arrays: list[np.ndarray], labels: list[int], where: str, image_size: tuple[int, int] | None) -> LabeledImages:
    if not arrays:
        raise ValueError(f"{where}: no images found")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"{where}: images of different sizes {sorted(shapes)[:4]}")
    shape = next(iter(shapes))
    if image_size is not None and shape[1:] != tuple(image_size):
        raise ValueError(f"{where}: expected {image_size[0]}x{image_size[1]} images; got {shape[1]}x{shape[2]}")
    return LabeledImages(np.stack(arrays), np.asarray(labels, dtype=np.int64))


def load_image_folder(
    root: str | os.PathLike, *, classes: tuple[str, ...] | None = None, image_size: tuple[int, int] | None = None
) -> LabeledImages:
    """Images from ``root/<class>/*.png|jpg|jpeg`` as uint8 RGB (N, 3, H, W) with labels.

    The label of a class folder is its index in ``classes`` (default: the sorted folder
    names); images come class by class, by file name within a class. Every image must
    have the same size (``image_size`` = (H, W) if given).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not names:
        raise ValueError(f"{root} has no class sub-folders (expected {root}/<class>/*.png|jpg)")
    index = _class_index(names, classes, str(root))
    arrays, labels = [], []
    for name in sorted(names, key=index.__getitem__):
        for path in sorted(p for p in (root / name).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES):
            arrays.append(_decode_image(path.read_bytes(), str(path)))
            labels.append(index[name])
    return _stack(arrays, labels, str(root), image_size)


def _read_checksums(tar_path: Path) -> dict[str, str] | None:
    """``<name>.sha256[.gz]`` beside ``<name>.tar.gz``: lines '<sha256>  <split>/<class>/<file>'."""
    stem = re.sub(r"(\.tar\.gz|\.tgz|\.tar)$", "", tar_path.name)
    for candidate in (tar_path.with_name(stem + ".sha256.gz"), tar_path.with_name(stem + ".sha256")):
        if candidate.is_file():
            text = _read_maybe_gzip(candidate).decode()
            sums = {}
            for line in text.splitlines():
                if line.strip():
                    digest, name = line.split(maxsplit=1)
                    sums[name.strip().lstrip("*")] = digest
            return sums
    return None


_FOLDER_MEMBER = re.compile(r"^(?:.*/)?(train|test)/([^/]+)/([^/]+)$")


def _iter_tar_images(tar_path: Path, split: str) -> Iterator[tuple[str, str, bytes]]:
    """(class name, '<split>/<class>/<file>', bytes) of the split's images in a tar of image folders."""
    with tarfile.open(tar_path, "r:*") as tar:
        for member in tar:
            m = _FOLDER_MEMBER.match(member.name)
            if member.isfile() and m and m.group(1) == split and Path(m.group(3)).suffix.lower() in _IMAGE_SUFFIXES:
                yield m.group(2), f"{m.group(1)}/{m.group(2)}/{m.group(3)}", tar.extractfile(member).read()  # type: ignore[union-attr]


def _load_image_tar(tar_path: Path, split: str, *, verify: bool) -> LabeledImages:
    sums = _read_checksums(tar_path) if verify else None
    records = sorted(_iter_tar_images(tar_path, split), key=lambda r: r[1])
    if not records:
        raise ValueError(f"{tar_path} holds no images under <...>/{split}/<class>/ (expected .png/.jpg members)")
    if sums is not None:
        expected = {k for k in sums if k.startswith(f"{split}/")}
        seen = {r[1] for r in records}
        if expected != seen:
            raise ValueError(
                f"{tar_path}: members of split {split!r} differ from its checksum list "
                f"({len(seen - expected)} unlisted, {len(expected - seen)} missing)"
            )
        bad = [r[1] for r in records if hashlib.sha256(r[2]).hexdigest() != sums[r[1]]]
        if bad:
            raise ValueError(f"{tar_path}: sha256 mismatch for {len(bad)} images, e.g. {bad[:3]}")
    index = _class_index(sorted({r[0] for r in records}), CIFAR10_CLASSES, str(tar_path))
    records.sort(key=lambda r: (index[r[0]], r[1]))
    arrays = [_decode_image(raw, f"{tar_path}:{rel}") for _, rel, raw in records]
    return _stack(arrays, [index[r[0]] for r in records], f"{tar_path} ({split})", (32, 32))


def load_cifar10(data_dir: str | os.PathLike, split: str = "train", *, verify: bool = True) -> LabeledImages:
    """CIFAR-10 from the python pickle batches, image folders, or a tar.gz of either.

    Sources, tried in this order (the first one present is read):

    1. pickle batches ``data_batch_1..5`` / ``test_batch`` in ``data_dir`` or
       ``data_dir/cifar-10-batches-py`` (torchvision's and the official layout);
    2. ``data_dir/cifar-10-python.tar.gz`` (the official archive), read in place;
    3. image folders ``<split>/<class>/*.png|jpg`` in ``data_dir`` or one level below it
       (e.g. ``CIFAR-10-images/train/cat/0000.jpg``);
    4. a ``*cifar*.tar.gz`` / ``.tgz`` / ``.tar`` in ``data_dir`` holding such folders,
       read in place without extracting (e.g. ``cifar10-jpeg-q75.tar.gz``). With
       ``verify=True``, a checksum list ``<name>.sha256[.gz]`` beside it (lines
       ``<sha256>  <split>/<class>/<file>``) is checked for every image of the split.

    Pickles keep their file order (classes interleaved); folders give classes in the
    standard order (:data:`CIFAR10_CLASSES`: airplane=0, ..., truck=9), files sorted by
    name within a class, so the first n images of a folder source are not a random
    subset: draw subsets with a permutation (``x[rng.permutation(len(x))[:n]]``).
    Always checked: 32x32 RGB, labels 0..9, class names standard.

    Returns
    -------
    LabeledImages: images uint8 (N, 3, 32, 32), labels int64 (N,);
    N = 50,000 (train) or 10,000 (test) for the full data set.
    """
    check_choice(split, ("train", "test"), "split")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10 data directory {root} does not exist")
    first_batch = _batch_names(split)[0]
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / first_batch).is_file():
            return _load_cifar_pickles(folder, split)
    if (root / "cifar-10-python.tar.gz").is_file():
        return _load_cifar_pickle_tar(root / "cifar-10-python.tar.gz", split)
    for folder in [root] + sorted(p for p in root.iterdir() if p.is_dir()):
        if (folder / split).is_dir():
            return load_image_folder(folder / split, classes=CIFAR10_CLASSES, image_size=(32, 32))
    tars = sorted(p for p in root.iterdir() if p.is_file() and "cifar" in p.name.lower() and re.search(r"(\.tar\.gz|\.tgz|\.tar)$", p.name))
    if tars:
        return _load_image_tar(tars[0], split, verify=verify)
    raise FileNotFoundError(
        f"no CIFAR-10 {split} data in {root}: looked for {first_batch} (also in cifar-10-batches-py/), "
        f"cifar-10-python.tar.gz, {split}/<class>/ image folders, and *cifar*.tar.gz archives of them"
    )


# --------------------------------------------------------------------------------------
# Float images -> uint8
# --------------------------------------------------------------------------------------


#: Data sets :func:`load_dataset` reads by name.
DATASETS = ("mnist", "cifar10")


def load_dataset(name: str, data_dir: str | os.PathLike, split: str = "train", *, verify: bool = True) -> LabeledImages:
    """:func:`load_mnist` or :func:`load_cifar10` by ``name`` (one of :data:`DATASETS`).

    >>> load_dataset("svhn", ".")
    Traceback (most recent call last):
    ...
    ValueError: dataset must be one of 'mnist', 'cifar10'; got 'svhn'
    """
    check_choice(name, DATASETS, "dataset")
    return (load_mnist if name == "mnist" else load_cifar10)(data_dir, split, verify=verify)


def float_to_uint8(images: Any, *, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Quantise float images to uint8 pixels: round((x − lo) / (hi − lo) · 255), clipped to 0..255.

    Generators usually output tanh values in [−1, 1] (``value_range=(-1, 1)``); use
    (0, 1) for sigmoid outputs. Returns a numpy uint8 array of the input's shape.

    Examples
    --------
    >>> float_to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist()
    [0, 128, 255, 255]
    """
    lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        raise ValueError(f"value_range must be (lo, hi) with hi > lo; got {value_range}")
    arr = images.detach().cpu().numpy() if is_torch_tensor(images) else np.asarray(images)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"images must be a floating-point array; got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"images must be finite; got {int(np.isnan(arr).sum())} NaN and {int(np.isinf(arr).sum())} inf entries")
    scaled = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
