"""Readers for the file formats :func:`bayesgen.data.load_data` accepts.

Each reader takes a path and returns a :class:`Loaded` holding the raw values as read.
Every problem with a file (missing, corrupt, truncated, wrong shape) becomes a one-line
:class:`~bayesgen.BayesgenError`; no library exception escapes.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesgen._errors import BayesgenError, require
from bayesgen.data._preprocess import _reason

SUPPORTED = (
    ".npy, .npz, .csv, binarized-MNIST .mat or .amat, MNIST IDX (*-idx3-ubyte, optionally .gz) "
    "or a folder of .png images"
)
_DATA_KEYS = ("x", "X", "data", "images")
_LABEL_KEYS = ("y", "labels", "targets")
LABEL_COLUMN = "label"  # the CSV column that holds labels unless the user names another: `y` stays a feature
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_IMAGES = re.compile(r"(.*)images([-.]idx)3(-ubyte)(\.gz)?", re.IGNORECASE)


class Loaded(NamedTuple):
    """What a reader found: raw (N, D) values and whatever the format says about them."""

    x: np.ndarray
    labels: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    levels: int | None = None
    labels_from: str | None = None  # where the labels came from, said to the user: "column 'label'"


def read_path(path: Path, label_column: str | None = LABEL_COLUMN) -> Loaded:
    """Read an existing file or folder, choosing the reader by its type and name.
    ``label_column`` names the column of a CSV header that holds labels (``None``: none does)."""
    is_csv = path.suffix.lower() == ".csv" and not path.is_dir()
    require(is_csv or label_column in (None, LABEL_COLUMN),
            f"label_column names a column of a CSV file's header, but '{path}' is not a CSV file; "
            "its format says where its labels are (see load_data)")
    if is_csv:
        return read_csv(path, label_column)
    if path.is_dir():
        return read_png_folder(path)
    name = path.name.lower()
    if name.endswith(("idx3-ubyte", "idx3-ubyte.gz")):
        return read_idx(path)
    require(
        not name.endswith(("idx1-ubyte", "idx1-ubyte.gz")),
        f"data file '{path}' is an MNIST labels file; pass the images file (*-idx3-ubyte) "
        "and its labels file is picked up next to it",
    )
    readers = {".npy": read_npy, ".npz": read_npz, ".csv": read_csv, ".mat": read_mat, ".amat": read_amat}
    suffix = path.suffix.lower()
    require(
        suffix in readers,
        f"data file '{path}' has unsupported format '{suffix or 'no suffix'}'; supported: {SUPPORTED}",
    )
    return readers[suffix](path)


# --- NumPy and MATLAB arrays -------------------------------------------------------------


def read_npy(path: Path) -> Loaded:
    """A .npy array: 2-D (N, D), 3-D (N, H, W) or 4-D (N, C, H, W) / (N, H, W, C) images."""
    array = _read_numpy(path, "a NumPy .npy array", "numpy.save")
    require(
        isinstance(array, np.ndarray),
        f"data file '{path}' is a .npz archive, not a .npy array; rename it to .npz",
    )
    return _from_array(array, f"data file '{path}'")


def read_npz(path: Path) -> Loaded:
    """A .npz archive: data under x/X/data/images (or its only array), labels under y/labels/targets."""
    arrays = _read_numpy(path, "a NumPy .npz archive", "numpy.savez")
    if isinstance(arrays, np.ndarray):  # a .npy saved under a .npz name: fine
        return _from_array(arrays, f"data file '{path}'")
    return _pick_arrays(arrays, f"data file '{path}'")


def read_mat(path: Path) -> Loaded:
    """A MATLAB .mat file (binarized MNIST): data under 'X' (or its only array), levels 2 if 0/1."""
    try:
        import scipy.io  # lazy: ~0.3 s that only .mat files need

        contents = scipy.io.loadmat(path)
    except Exception as error:
        raise BayesgenError(
            f"could not read data file '{path}' as a MATLAB .mat file ({_reason(error)}); "
            "save it with scipy.io.savemat (MATLAB v7.3/HDF5 files are not supported)"
        ) from error
    arrays = {key: value for key, value in contents.items() if not key.startswith("__")}
    return _binary_mnist(_pick_arrays(arrays, f"data file '{path}'"))


def _read_numpy(path: Path, kind: str, saver: str) -> np.ndarray | dict[str, np.ndarray]:
    """One array from a .npy file, or every array of a .npz archive by key."""
    try:
        # Our own file handle: np.load leaks its own when a damaged zip fails to open.
        with path.open("rb") as file:
            contents = np.load(file, allow_pickle=False)
            if isinstance(contents, np.ndarray):
                return contents
            with contents:
                return {key: contents[key] for key in contents.files}
    except Exception as error:  # corrupt header, pickled objects, bad zip, truncated data
        raise BayesgenError(
            f"could not read data file '{path}' as {kind} ({_reason(error)}); save it with {saver}"
        ) from error


def _pick_arrays(arrays: dict[str, np.ndarray], what: str) -> Loaded:
    """Choose the data array and the optional labels array of an archive by their keys."""
    require(arrays, f"{what} holds no arrays; save the data under the key 'x'")
    label_key = next((key for key in _LABEL_KEYS if key in arrays), None)
    data_key = next((key for key in _DATA_KEYS if key in arrays), None)
    if data_key is None:
        others = [key for key in arrays if key != label_key]
        require(
            len(others) == 1,
            f"{what} holds arrays {sorted(arrays)} and none is named {' / '.join(_DATA_KEYS)}; "
            "save the data under the key 'x' (and labels under 'y')",
        )
        data_key = others[0]
    loaded = _from_array(arrays[data_key], what)
    if label_key is None:
        return loaded
    return loaded._replace(labels=as_labels(arrays[label_key], len(loaded.x), what), labels_from=f"array '{label_key}'")


def _from_array(array: np.ndarray, what: str) -> Loaded:
    """(N, D) stays; (N, H, W) and (N, C, H, W) / (N, H, W, C) images are flattened."""
    shape = array.shape
    if array.ndim == 2:
        return Loaded(array)
    if array.ndim == 4 and shape[1] not in (1, 3, 4) and shape[3] in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)  # channels last -> channels first
    if array.ndim == 3 or (array.ndim == 4 and array.shape[1] in (1, 3, 4)):
        image_shape = array.shape[1:] if array.ndim == 3 or array.shape[1] > 1 else array.shape[2:]
        return Loaded(array.reshape(shape[0], math.prod(image_shape)), image_shape=tuple(image_shape))
    raise BayesgenError(
        f"{what} holds an array of shape {shape}; data must be 2-D (rows, features), 3-D (N, H, W) "
        "grey images or 4-D (N, C, H, W) images with C in 1, 3, 4; reshape it before saving"
    )


def as_labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    """Check labels are one whole number per row; return them as int64 of shape (n,)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and 1 in labels.shape:  # MATLAB and column vectors
        labels = labels.reshape(-1)
    require(
        labels.shape == (n,),
        f"{what} has labels of shape {labels.shape} for {n} rows; give one label per row, shape ({n},)",
    )
    require(
        labels.dtype.kind in "biuf" and bool(np.all(np.isfinite(labels) & (labels == np.round(labels)))),
        f"{what} has labels that are not whole numbers (dtype {labels.dtype}); "
        "labels must be class indices 0, 1, 2, ...",
    )
    largest = float(np.max(np.abs(labels.astype(np.float64)))) if labels.size else 0.0
    require(largest < 2**31,
            f"{what} has a label of magnitude {largest:.3g}; labels must be class indices 0, 1, 2, ...")
    return labels.astype(np.int64)


def _binary_mnist(loaded: Loaded) -> Loaded:
    """Binarized MNIST: levels 2 when the values are 0/1, (28, 28) images for 784 features."""
    x = loaded.x
    binary = x.dtype.kind in "biuf" and x.size > 0 and bool(np.isin(x, (0, 1)).all())
    image_shape = loaded.image_shape or ((28, 28) if x.ndim == 2 and x.shape[1] == 784 else None)
    return loaded._replace(levels=2 if binary else None, image_shape=image_shape)


# --- text tables ---------------------------------------------------------------------------


def read_csv(path: Path, label_column: str | None = LABEL_COLUMN) -> Loaded:
    """Comma-separated numbers; an optional header line, whose column ``label_column`` (default
    'label'; ``None``: no column) becomes the labels and every other column a feature."""
    hint = "CSV input must be all numbers (an optional header line is allowed)"
    rows = _text_rows(path, hint)
    first = [field.strip() for field in rows[0][1].split(",")]
    numeric = [_is_number(field) for field in first]
    header = None
    if not any(numeric):
        header, rows = first, rows[1:]
        require(rows, f"data file '{path}' has a header line but no data rows; add rows of numbers")
    elif not all(numeric):
        column = numeric.index(False) + 1
        raise BayesgenError(
            f"data file '{path}' has a non-numeric value {first[column - 1]!r} on line {rows[0][0]}, "
            f"column {column}; {hint}, and a header line must hold only names"
        )
    table = _parse_table(path, rows, ",", len(first), hint)
    what = f"data file '{path}'"
    named = label_column not in (None, LABEL_COLUMN)  # the user asked for this column: it must be there
    require(not named or header is not None,
            f"{what} has no header line, so it has no column '{label_column}'; add a header of column names")
    if header is None or label_column is None:
        return Loaded(table)
    label_columns = [i for i, name in enumerate(header) if name.lower() == label_column.lower()]
    require(label_columns or not named,
            f"{what} has no column '{label_column}'; its columns are {', '.join(header)}")
    if not label_columns:
        return Loaded(table)
    require(len(label_columns) == 1, f"{what} has several columns named '{label_column}'; keep one")
    require(len(header) > 1, f"{what} has only its label column '{label_column}'; add feature columns")
    labels = as_labels(table[:, label_columns[0]], len(table), f"{what} column '{header[label_columns[0]]}'")
    return Loaded(np.delete(table, label_columns[0], axis=1), labels=labels,
                  labels_from=f"column '{header[label_columns[0]]}'")


def read_amat(path: Path) -> Loaded:
    """Whitespace-separated numbers, one row per image (binarized MNIST .amat)."""
    hint = ".amat input must be whitespace-separated numbers, one row per image"
    rows = _text_rows(path, hint)
    return _binary_mnist(Loaded(_parse_table(path, rows, None, len(rows[0][1].split()), hint)))


def _text_rows(path: Path, hint: str) -> list[tuple[int, str]]:
    """The non-blank lines of a UTF-8 text file with their 1-based line numbers."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BayesgenError(
            f"data file '{path}' is not UTF-8 text (byte {raw[error.start]:#04x} at offset "
            f"{error.start}); {hint}"
        ) from error
    rows = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    require(rows, f"data file '{path}' is empty; {hint}")
    return rows


def _parse_table(
    path: Path, rows: list[tuple[int, str]], delimiter: str | None, width: int, hint: str
) -> np.ndarray:
    """Parse rows of numbers into a float64 (N, width) array, naming the first bad cell."""
    try:
        table = np.loadtxt([line for _, line in rows], delimiter=delimiter, ndmin=2, comments=None)
        if table.shape[1] == width:
            return table
    except (ValueError, TypeError) as error:
        reason = _reason(error)
    else:
        reason = f"rows have {table.shape[1]} values but the first line has {width}"
    for number, line in rows:  # the slow scan finds the first offending cell for the message
        fields = line.split(delimiter)
        require(
            len(fields) == width,
            f"data file '{path}' has {len(fields)} values on line {number} but {width} on line {rows[0][0]}; "
            "every row needs the same number of columns",
        )
        for column, field in enumerate(fields, 1):
            require(
                _is_number(field),
                f"data file '{path}' has a non-numeric value {field.strip()!r} on line {number}, "
                f"column {column}; {hint}",
            )
    raise BayesgenError(f"could not parse data file '{path}' ({reason}); {hint}")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return "_" not in field  # Python accepts 1_000, NumPy does not


# --- MNIST IDX -----------------------------------------------------------------------------


def read_idx(path: Path) -> Loaded:
    """MNIST IDX images (magic 0x00000803), with the matching labels file when it sits beside them."""
    images = _read_idx_array(path, ndim=3, role="images")
    n, height, width = images.shape
    levels = 256 if images.dtype == np.uint8 else None
    loaded = Loaded(images.reshape(n, height * width), image_shape=(height, width), levels=levels)
    labels_path = _idx_labels_path(path)
    if labels_path is None:
        return loaded
    labels = _read_idx_array(labels_path, ndim=1, role="labels")
    require(
        len(labels) == n,
        f"labels file '{labels_path}' has {len(labels)} labels but '{path}' has {n} images; "
        "pair train-images with train-labels and t10k-images with t10k-labels",
    )
    return loaded._replace(labels=labels.astype(np.int64), labels_from=f"labels file '{labels_path.name}'")


def _idx_labels_path(images_path: Path) -> Path | None:
    """train-images-idx3-ubyte[.gz] -> train-labels-idx1-ubyte[.gz] beside it, if it exists."""
    match = _IDX_IMAGES.fullmatch(images_path.name)
    if match is None:
        return None
    stem = f"{match[1]}labels{match[2]}1{match[3]}"
    for name in (stem + (match[4] or ""), stem, stem + ".gz"):
        if (images_path.parent / name).is_file():
            return images_path.parent / name
    return None


def _read_idx_array(path: Path, *, ndim: int, role: str) -> np.ndarray:
    raw = _read_bytes(path)
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise BayesgenError(
                f"could not decompress data file '{path}' ({_reason(error)}); download it again"
            ) from error
    expected = 0x0800 + ndim
    truncated = f"data file '{path}' is truncated inside its IDX header; download it again"
    require(len(raw) >= 4, truncated)
    magic = int.from_bytes(raw[:4], "big")
    gz_hint = "; it is gzip-compressed, so name it *.gz" if raw[:2] == b"\x1f\x8b" else ""
    require(
        raw[:2] == b"\0\0" and raw[2] in _IDX_DTYPES and raw[3] == ndim,
        f"data file '{path}' has magic number {magic:#010x}, not {expected:#010x} of an MNIST IDX "
        f"{role} file{gz_hint or '; check that it is an IDX file'}",
    )
    header_end = 4 + 4 * ndim
    require(len(raw) >= header_end, truncated)
    shape = struct.unpack(f">{ndim}I", raw[4:header_end])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    require(  # numpy cannot even describe such a shape, zero-sized or not
        math.prod(side for side in shape if side) * dtype.itemsize < 2**40,
        f"data file '{path}' has a header promising {role} of shape {shape}, over a terabyte; "
        "the file is damaged: download it again",
    )
    needed, found = math.prod(shape) * dtype.itemsize, len(raw) - header_end
    require(
        found == needed,
        f"data file '{path}' is {'truncated' if found < needed else 'too long'}: its header promises "
        f"{role} of shape {shape} ({needed} bytes) but {found} bytes follow; download it again",
    )
    return np.frombuffer(raw, dtype, offset=header_end).reshape(shape).astype(dtype.newbyteorder("="))


# --- PNG folders ---------------------------------------------------------------------------


def read_png_folder(folder: Path) -> Loaded:
    """.png files sorted by name; class subfolders (sorted) give labels 0..K-1.

    Grey images give image_shape (H, W); colour ones (C, H, W) with C = 3 (alpha is
    dropped). Values are the 0..255 pixel intensities, levels 256.
    """
    flat = _png_files(folder)
    subfolders = sorted(sub for sub in folder.iterdir() if sub.is_dir() and not sub.name.startswith("."))
    classes = [sub for sub in subfolders if _png_files(sub)]
    require(
        not (flat and classes),
        f"folder '{folder}' has .png files both at the top level and in subfolders; "
        "put them all in class subfolders or all at the top level",
    )
    files = [(file, label) for label, sub in enumerate(classes) for file in _png_files(sub)]
    files = files or [(file, None) for file in flat]
    require(
        files,
        f"folder '{folder}' holds no .png files (nor class subfolders of them); add images or pass a data file",
    )
    images = [_read_png(file) for file, _ in files]
    size = images[0].shape[:2]
    for (file, _), image in zip(files, images):
        require(
            image.shape[:2] == size,
            f"image '{file}' is {image.shape[0]}x{image.shape[1]} but '{files[0][0]}' is "
            f"{size[0]}x{size[1]} (height x width); resize all images in '{folder}' to one size",
        )
    channels = max(image.shape[2] for image in images)
    stacked = np.stack([np.broadcast_to(image, (*size, channels)) for image in images])  # (N, H, W, C)
    image_shape = size if channels == 1 else (channels, *size)
    x = stacked.transpose(0, 3, 1, 2).reshape(len(images), -1)
    labels = np.array([label for _, label in files], np.int64) if classes else None
    return Loaded(x, labels=labels, image_shape=tuple(image_shape), levels=256,
                  labels_from="class subfolders" if classes else None)


def _png_files(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith(".") and p.is_file()),
        key=lambda p: p.name,
    )


def _read_png(file: Path) -> np.ndarray:
    """One PNG as uint8 (H, W, C), C = 1 for grey (also RGB with R = G = B) or 3 for colour."""
    import matplotlib.image  # lazy: ~0.2 s to import (PIL), only image folders need it

    try:
        image = matplotlib.image.imread(file)
    except Exception as error:
        raise BayesgenError(
            f"could not read image '{file}' as a PNG ({_reason(error)}); remove it or save it again"
        ) from error
    if image.dtype.kind == "f":  # matplotlib gives PNGs as floats in [0, 1]
        image = np.rint(np.clip(image, 0, 1) * 255)
    image = image.astype(np.uint8)
    if image.ndim == 2:
        return image[:, :, None]
    rgb = image[:, :, :3]
    return rgb[:, :, :1] if (rgb == rgb[:, :, :1]).all() else rgb


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BayesgenError(
            f"could not read data file '{path}' ({_reason(error)}); check the path and its permissions"
        ) from error
