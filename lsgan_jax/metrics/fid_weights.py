"""pytorch-fid's published Inception weights: fetch, verify (sha256), convert to Flax, cache.

FID numbers are comparable only when they come from the same network weights (peers.md §7:
"Inception weights and resizing"). This module loads exactly the file that pytorch-fid uses,

    pt_inception-2015-12-05-6726825d.pth      (95,628,359 bytes)
    sha256 6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2

released at :data:`PYTORCH_FID_WEIGHTS_URL`. It is the TensorFlow FID graph
(``inception-2015-12-05.tgz``, the one TTUR's original FID code uses) ported to PyTorch by
pytorch-fid; the 8 hex digits in the name are the prefix of the file's sha256 (the torch.hub
naming convention). torch-fidelity publishes the same bytes as
``weights-inception-2015-12-05-6726825d.pth``. The full hash and size above are the ones that
several independent public projects pin for this URL/file (found by a code search; the hash starts
with the file name's ``6726825d``, as the convention requires). :func:`load_pytorch_fid_weights`
refuses any other file unless told otherwise.

No PyTorch is needed: :func:`read_torch_state_dict` reads both of ``torch.save``'s formats (the
legacy pickle stream of torch < 1.6, current when the file was made in 2019, and the zip archive
of torch >= 1.6), so the file's exact format does not matter, with a restricted unpickler that
only builds plain tensors (it cannot run code from the file). The
state dict is converted once (:func:`convert_state_dict`: OIHW -> HWIO kernels, BatchNorm names)
and cached as ``.npz`` in :func:`default_cache_dir`, so later loads take ~1 s and the ``.pth`` may
be deleted.

Offline machines: download the file elsewhere, then either pass its path
(``load_pytorch_fid_weights("/path/pt_inception-2015-12-05-6726825d.pth")``) or copy it into the
cache directory (or torch.hub's ``~/.cache/torch/hub/checkpoints/``, where pytorch-fid already
stored it if you used it before). :class:`WeightsUnavailableError` says this when nothing is found.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lsgan_jax.cache import default_cache_dir

PYTORCH_FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
PYTORCH_FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
PYTORCH_FID_WEIGHTS_SIZE = 95_628_359
PYTORCH_FID_WEIGHTS_NAME = "pt_inception-2015-12-05"

__all__ = [
    "PYTORCH_FID_WEIGHTS_FILENAME",
    "PYTORCH_FID_WEIGHTS_NAME",
    "PYTORCH_FID_WEIGHTS_SHA256",
    "PYTORCH_FID_WEIGHTS_SIZE",
    "PYTORCH_FID_WEIGHTS_URL",
    "ConvertedWeights",
    "WeightsUnavailableError",
    "convert_state_dict",
    "default_cache_dir",
    "find_pytorch_fid_weights",
    "load_pytorch_fid_weights",
    "read_torch_state_dict",
    "sha256_file",
    "weights_tag",
]


class WeightsUnavailableError(FileNotFoundError):
    """The Inception weights file is not on this machine and could not be downloaded."""


def _torch_hub_checkpoint_dir() -> Path:
    """Where torch.hub (and so pytorch-fid) stores downloads: ``$TORCH_HOME/hub/checkpoints``."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        return Path(torch_home).expanduser() / "hub" / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "torch" / "hub" / "checkpoints"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_tag(sha256: str) -> str:
    """The protocol string for weights with this hash (what every FID number reports).

    Args:
        sha256: Hex sha256 of the source ``.pth`` file.

    Returns:
        ``"pt_inception-2015-12-05 (sha256 6726825d0af5f729…)"`` for the published file, else
        ``"custom inception (sha256 …)"``.
    """
    short = sha256[:16]
    if sha256 == PYTORCH_FID_WEIGHTS_SHA256:
        return f"{PYTORCH_FID_WEIGHTS_NAME} (sha256 {short}…)"
    return f"custom inception (sha256 {short}…)"


# --------------------------------------------------------------------------------------------
# torch.save reader (no torch needed)
# --------------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, Any] = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclasses.dataclass
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_STORAGE_DTYPES[self.name])


@dataclasses.dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError(f"storage {self.storage.key!r} has no data in the file")
        if not self.size:
            return np.array(data[self.offset])
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused_args) -> _LazyTensor:
    del unused_args  # requires_grad, backward_hooks, metadata
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *unused_args):
    del unused_args
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only OrderedDicts and tensors; refuses every other global (no code execution)."""

    def __init__(self, file: io.BufferedIOBase, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: this reader only accepts a plain tensor state dict"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (torch < 0.4 files) are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _materialize(obj: Any) -> dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a state dict (a mapping of tensors), got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, _LazyTensor):
            raise ValueError(f"state dict entry {k!r} is not a tensor ({type(v).__name__})")
        out[str(k)] = v.materialize()
    return out


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"{path}: not a torch.save zip archive (no unique data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
        for key, st in storages.items():
            raw = zf.read(f"{prefix}data/{key}")
            dtype = st.dtype.newbyteorder("<" if byteorder == "little" else ">")
            st.data = np.frombuffer(raw, dtype=dtype, count=st.numel).astype(st.dtype)
    return _materialize(obj)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        magic = pickle.load(f)
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a torch.save file (bad magic number)")
        protocol = pickle.load(f)
        if protocol != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported torch.save protocol {protocol}")
        sys_info = pickle.load(f)
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            st = storages[str(key)]
            (numel,) = struct.unpack("<q" if little else ">q", f.read(8))
            if numel != st.numel:
                raise ValueError(f"{path}: storage {key} has {numel} elements, expected {st.numel}")
            raw = f.read(numel * st.dtype.itemsize)
            if len(raw) != numel * st.dtype.itemsize:
                raise ValueError(f"{path}: file is truncated (storage {key})")
            dtype = st.dtype.newbyteorder("<" if little else ">")
            st.data = np.frombuffer(raw, dtype=dtype).astype(st.dtype)
    return _materialize(obj)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a ``torch.save``-d state dict of tensors into NumPy arrays, without PyTorch.

    Both serialization formats are supported: the zip archive (torch >= 1.6 default) and the
    legacy pickle stream (torch < 1.6, or ``_use_new_zipfile_serialization=False``). Unpickling
    is restricted to ``OrderedDict`` and tensor rebuilds, so a malicious file cannot run code.

    Args:
        path: The ``.pth`` file.

    Returns:
        ``{name: array}`` in the file's order, dtypes as stored (float32 weights, int64
        ``num_batches_tracked``).

    Raises:
        ValueError: The file is not a plain tensor state dict in a supported format.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)


# --------------------------------------------------------------------------------------------
# Conversion: pytorch-fid (torchvision Inception3 names) -> Flax NNX flat keys
# --------------------------------------------------------------------------------------------

_BN_NAMES = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}


def convert_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Converts pytorch-fid's ``FIDInceptionV3`` state dict to our Flax parameter layout.

    Names follow torchvision's ``Inception3`` (``Mixed_5b.branch1x1.conv.weight``, …), which
    both pytorch-fid and torch-fidelity use; the Flax module mirrors them attribute for
    attribute, so the mapping is

    * ``<block>.conv.weight`` ``(O, I, kh, kw)`` -> ``<block>/conv/kernel`` ``(kh, kw, I, O)``
    * ``<block>.bn.{weight, bias, running_mean, running_var}`` -> ``<block>/bn/{scale, bias,
      mean, var}`` (``num_batches_tracked`` is dropped)
    * ``fc.weight`` ``(1008, 2048)`` -> ``fc/kernel`` ``(2048, 1008)``; ``fc.bias`` -> ``fc/bias``

    Args:
        state_dict: ``{name: array}`` (NumPy arrays, or torch tensors, which are converted).

    Returns:
        ``{"Mixed_5b/branch1x1/conv/kernel": float32 array, …}``. Completeness and shapes are
        checked when the dict is loaded into a model
        (:func:`lsgan_jax.metrics.inception.load_params`).

    Raises:
        ValueError: A key that pytorch-fid's network does not have (e.g. ``AuxLogits.*`` of
            torchvision's ImageNet weights, which are *not* the FID weights).
    """
    out: dict[str, np.ndarray] = {}
    unexpected = []
    for name, value in state_dict.items():
        arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        parts = name.split(".")
        if parts[-1] == "num_batches_tracked":
            continue
        if parts[0] == "AuxLogits" or len(parts) < 2:
            unexpected.append(name)
            continue
        if parts == ["fc", "weight"]:
            out["fc/kernel"] = arr.T.astype(np.float32)
        elif parts == ["fc", "bias"]:
            out["fc/bias"] = arr.astype(np.float32)
        elif parts[-2] == "conv" and parts[-1] == "weight" and arr.ndim == 4:
            out["/".join(parts[:-1] + ["kernel"])] = arr.transpose(2, 3, 1, 0).astype(np.float32)
        elif parts[-2] == "bn" and parts[-1] in _BN_NAMES:
            out["/".join(parts[:-1] + [_BN_NAMES[parts[-1]]])] = arr.astype(np.float32)
        else:
            unexpected.append(name)
    if unexpected:
        raise ValueError(
            "not pytorch-fid's FID Inception state dict; unexpected keys: "
            f"{sorted(unexpected)[:8]}{' …' if len(unexpected) > 8 else ''}. Use "
            f"{PYTORCH_FID_WEIGHTS_FILENAME} ({PYTORCH_FID_WEIGHTS_URL}); torchvision's ImageNet "
            "Inception weights give different FIDs."
        )
    return out


# --------------------------------------------------------------------------------------------
# Fetch, verify, cache
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ConvertedWeights:
    """Converted Inception parameters and where they came from.

    Attributes:
        params: ``{"Mixed_5b/branch1x1/conv/kernel": array, …}`` (see :func:`convert_state_dict`).
        sha256: Hex sha256 of the source ``.pth`` file.
        source: Path or URL of the ``.pth`` (or of the ``.npz`` cache it was read from).
    """

    params: dict[str, np.ndarray]
    sha256: str
    source: str

    @property
    def tag(self) -> str:
        """Protocol string, e.g. ``"pt_inception-2015-12-05 (sha256 6726825d0af5f729…)"``."""
        return weights_tag(self.sha256)


def _unavailable_message(cache_dir: Path, url: str, reason: str) -> str:
    return (
        f"pytorch-fid Inception weights not available ({reason}). FID needs the file "
        f"{PYTORCH_FID_WEIGHTS_FILENAME} ({PYTORCH_FID_WEIGHTS_SIZE:,} bytes, sha256 "
        f"{PYTORCH_FID_WEIGHTS_SHA256}). On a machine with internet run\n"
        f"    curl -L -o {PYTORCH_FID_WEIGHTS_FILENAME} {url}\n"
        f"then copy it to {cache_dir}/ (or {_torch_hub_checkpoint_dir()}/) or pass its path: "
        "load_pytorch_fid_weights('/path/to/file.pth')."
    )


def find_pytorch_fid_weights(cache_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Looks for the published ``.pth`` in the cache directory and in torch.hub's checkpoints.

    Args:
        cache_dir: Our cache directory (default :func:`default_cache_dir`).

    Returns:
        The first existing path, or ``None``.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for folder in (cache, _torch_hub_checkpoint_dir()):
        candidate = folder / PYTORCH_FID_WEIGHTS_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _download(url: str, dest: Path, expected_sha256: str | None, cache_dir: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".download-", suffix=".pth")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out, length=1 << 20)
        got = sha256_file(tmp_name)
        if expected_sha256 is not None and got != expected_sha256:
            raise ValueError(
                f"downloaded {url} has sha256 {got}, expected {expected_sha256}; not using it"
            )
        os.replace(tmp_name, dest)
    except (urllib.error.URLError, OSError) as err:
        raise WeightsUnavailableError(
            _unavailable_message(cache_dir, url, f"download failed: {err}")
        ) from err
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return dest


def _npz_path(cache_dir: Path, sha256: str) -> Path:
    return cache_dir / f"inception_fid_{sha256[:16]}.npz"


def _load_npz(path: Path, sha256: str) -> ConvertedWeights | None:
    try:
        with np.load(path) as z:
            if str(z["__source_sha256__"]) != sha256:
                return None
            params = {k: z[k] for k in z.files if not k.startswith("__")}
    except (OSError, KeyError, ValueError):
        return None
    return ConvertedWeights(params, sha256, str(path))


def _save_npz(path: Path, weights: ConvertedWeights) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".convert-", suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp_name, __source_sha256__=np.array(weights.sha256), **weights.params)
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)


def load_pytorch_fid_weights(
    path: str | os.PathLike[str] | None = None,
    *,
    expected_sha256: str | None = PYTORCH_FID_WEIGHTS_SHA256,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str = PYTORCH_FID_WEIGHTS_URL,
) -> ConvertedWeights:
    """Loads pytorch-fid's FID Inception weights, verified by sha256, converted for Flax.

    Resolution order when ``path`` is ``None``: the converted ``.npz`` cache for
    ``expected_sha256``; the ``.pth`` in ``cache_dir`` or torch.hub's checkpoint folder
    (:func:`find_pytorch_fid_weights`); a download from ``url`` into ``cache_dir`` (if
    ``download``). The source file's sha256 must equal ``expected_sha256`` (pass ``None`` to
    accept any file, e.g. random test weights; the protocol tag then says "custom").

    Args:
        path: A local ``.pth`` (pytorch-fid's layout), or ``None`` to find/download it.
        expected_sha256: Required hash of the ``.pth``; ``None`` disables the check.
        cache_dir: Where downloads and converted ``.npz`` files live (default
            :func:`default_cache_dir`).
        download: Allow a network download when no local copy exists.
        url: Download URL (pytorch-fid's GitHub release by default).

    Returns:
        :class:`ConvertedWeights` (``params``, ``sha256``, ``source``, ``tag``).

    Raises:
        WeightsUnavailableError: No local copy and the download is disabled or fails (offline);
            the message says where to get the file and where to put it.
        ValueError: The file's sha256 differs from ``expected_sha256``, or it is not a
            pytorch-fid state dict.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if path is None:
        if expected_sha256 is not None:
            cached = _load_npz(_npz_path(cache, expected_sha256), expected_sha256)
            if cached is not None:
                return cached
        found = find_pytorch_fid_weights(cache)
        if found is None:
            if not download:
                raise WeightsUnavailableError(
                    _unavailable_message(cache, url, "no local copy and download=False")
                )
            found = _download(url, cache / PYTORCH_FID_WEIGHTS_FILENAME, expected_sha256, cache)
        path = found
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailableError(_unavailable_message(cache, url, f"{path} does not exist"))
    sha = sha256_file(path)
    if expected_sha256 is not None and sha != expected_sha256:
        raise ValueError(
            f"{path} has sha256 {sha}, expected {expected_sha256} "
            f"({PYTORCH_FID_WEIGHTS_FILENAME}). "
            "A different file gives FIDs that are not comparable; pass expected_sha256=None to "
            "use it anyway (the protocol will say 'custom')."
        )
    npz = _npz_path(cache, sha)
    cached = _load_npz(npz, sha)
    if cached is not None:
        return cached
    weights = ConvertedWeights(convert_state_dict(read_torch_state_dict(path)), sha, str(path))
    try:
        _save_npz(npz, weights)
    except OSError:  # read-only cache: still usable, just not cached
        pass
    return weights
