"""Weights files (.npz): written atomically, read bounded, every value checked before the network changes.

The format is numpy's savez zip with a JSON header, readable by ``np.load`` elsewhere (no pickles):

    header.npy                   uint8 bytes of {"format": "backprop-studio-weights", "version": 1, "network": ...,
                                 "params": {name: shape}, "buffers": [batch-norm layer names]}
    param/<name>.npy             each parameter ("param/fc1.w.npy"), float32 or float64
    buffer/<name>.npy            each buffer ("buffer/bn1.running_mean.npy", "buffer/bn1.running_var.npy")

Reading never trusts the file: it is opened with ``open_bounded`` (a regular file, at most MAX_FILE_BYTES); the zip's
directory is checked before anything is decompressed (names must be the ones this format writes, no duplicates, no
encryption, stored or deflated only, and each entry's declared uncompressed size must be what its array needs);
each .npy header is parsed by a strict pattern (dtype float32 or float64, the architecture's shape, within
MAX_PARAMS) before its data are read, and exactly that many bytes are read (the zip's CRC is then checked); the JSON
header is bounded in size and depth. Weights must be finite and running variances >= 0. Anything wrong is a
FileFormatError naming the file and the reason (ShapeError when the weights belong to another architecture), and
the network keeps its weights. Saving checks the same limits, so what can be saved can be opened.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from simulator.core.errors import (
    FileFormatError,
    ShapeError,
    StudioError,
    ValueInputError,
)
from simulator.core.files import atomic_writer, check_path, open_bounded
from simulator.nn.layers import layer_from_dict
from simulator.nn.network import MAX_PARAMS, Network

__all__ = ["FORMAT", "MAX_FILE_BYTES", "MAX_HEADER_BYTES", "VERSION", "load_network", "load_weights", "read_weights",
           "save_weights"]

FORMAT = "backprop-studio-weights"
VERSION = 1
MAX_HEADER_BYTES = 1 << 20          # the JSON header
MAX_JSON_DEPTH = 12                 # the header nests 4 deep
MAX_ENTRIES = 4096                  # arrays in one file
_NPY_OVERHEAD = 4096                # an .npy preamble and header (numpy writes 128 bytes; version 2 allows more)
_ENTRY_OVERHEAD = 1024              # a zip entry's local and central headers with a long name
MAX_FILE_BYTES = MAX_PARAMS * 8 + MAX_HEADER_BYTES + MAX_ENTRIES * (_NPY_OVERHEAD + _ENTRY_OVERHEAD)

# "fc1.w", or one level deeper inside a residual block: "res1.conv1.w", "res1.bn1.running_var"
_NAME = re.compile(r"(?:header|(?:param|buffer)/[A-Za-z_][A-Za-z0-9_]{0,63}"
                   r"(?:\.[A-Za-z_][A-Za-z0-9_]{0,31}){1,2})\.npy")
_NPY_HEADER = re.compile(r"\{'descr': '(?P<descr>[<>|=][A-Za-z][0-9]{1,2})', 'fortran_order': (?P<fortran>True|False), "
                         r"'shape': \((?P<shape>[0-9]{1,12}(?:, [0-9]{1,12}){0,7},?|)\), \} *\n?")
_FLOATS = {"<f4": np.dtype("<f4"), "<f8": np.dtype("<f8"), ">f4": np.dtype(">f4"), ">f8": np.dtype(">f8")}
# what a damaged zip can raise inside zipfile and zlib before our checks see its bytes
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
               NotImplementedError, RecursionError, struct.error, UnicodeDecodeError, OverflowError, KeyError,
               IndexError, TypeError, zlib.error)


def _name(path: str | os.PathLike) -> str:
    return check_path(path).name


# ================================================================================================== saving

def _header(network: Network) -> bytes:
    header = {"format": FORMAT, "version": VERSION, "network": network.spec_dict(),
              "params": {k: list(v.shape) for k, v in network.params.items()},
              "buffers": sorted({k.split(".", 1)[0] for k, _ in network.named_buffers()})}
    return json.dumps(header).encode()


def save_weights(network: Network, path: str | os.PathLike) -> None:
    """Write `network`'s weights file atomically (a temp file beside it, fsync, rename): a crash leaves the old file
    or the new one, never a truncated one. Refuses (ValueInputError) what the loader would refuse."""
    header = _header(network)
    arrays: dict[str, np.ndarray] = {"header": np.frombuffer(header, dtype=np.uint8)}
    for k, v in network.named_parameters():
        arrays[f"param/{k}"] = v
    for k, v in network.named_buffers():
        arrays[f"buffer/{k}"] = v
    if len(header) > MAX_HEADER_BYTES:
        raise ValueInputError(f"the network's description takes {len(header):,} bytes, more than a weights file "
                              f"may hold ({MAX_HEADER_BYTES:,}); use fewer layers")
    if len(arrays) > MAX_ENTRIES or sum(a.size for a in arrays.values()) > MAX_PARAMS + MAX_HEADER_BYTES:
        raise ValueInputError("the network has too many arrays or values for a weights file")
    for k, a in arrays.items():
        if not _NAME.fullmatch(f"{k}.npy"):
            raise ValueInputError(f"cannot save an array named {k!r} in a weights file")
        if k != "header" and not np.isfinite(a).all():
            raise ValueInputError(f"{k} holds NaN or infinity: such weights cannot be saved (or loaded back)")
    with atomic_writer(path, "wb") as fh:
        np.savez(fh, **arrays)


# ================================================================================================== reading

def _json_depth(v: Any, depth: int = 0) -> int:
    if depth > MAX_JSON_DEPTH:
        return depth
    if isinstance(v, dict):
        return max((_json_depth(x, depth + 1) for x in v.values()), default=depth + 1)
    if isinstance(v, list):
        return max((_json_depth(x, depth + 1) for x in v), default=depth + 1)
    return depth


class _Reader:
    """One open weights zip: its checked directory and bounded reads of its arrays."""

    def __init__(self, fh: IO[bytes], name: str):
        self.name = name
        self.zip = zipfile.ZipFile(fh)
        infos = self.zip.infolist()
        if not any(info.filename == "header.npy" for info in infos):
            self.fail("not a Backprop Studio weights file (no header)")
        if len(infos) > MAX_ENTRIES:
            self.fail(f"it holds {len(infos):,} entries, more than a weights file may ({MAX_ENTRIES:,})")
        self.entries: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            if not _NAME.fullmatch(info.filename):
                self.fail(f"unexpected entry {info.filename[:80]!r}: not a Backprop Studio weights file")
            if info.filename in self.entries:
                self.fail(f"the entry {info.filename!r} appears twice")
            if info.flag_bits & 0x1:
                self.fail(f"the entry {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self.fail(f"the entry {info.filename!r} uses an unsupported compression ({info.compress_type})")
            if info.file_size > MAX_FILE_BYTES:
                self.fail(f"the entry {info.filename!r} declares {info.file_size:,} bytes, more than a weights file "
                          f"may hold")
            self.entries[info.filename[:-4]] = info

    def fail(self, why: str) -> None:
        raise FileFormatError(f"{self.name}: {why}")

    def read_array(self, key: str, dtypes: Mapping[str, np.dtype], shape: tuple[int, ...] | None,
                   max_size: int) -> np.ndarray:
        """The entry's array, after checking its declared size, its .npy header (dtype in `dtypes`, `shape` when
        given, at most max_size values) and reading exactly its bytes."""
        info = self.entries[key]
        with self.zip.open(info) as ext:
            pre = ext.read(10)
            if len(pre) < 10 or pre[:6] != b"\x93NUMPY" or pre[6] not in (1, 2, 3):
                self.fail(f"{key} is not a .npy array")
            if pre[6] == 1:
                hlen, start = struct.unpack("<H", pre[8:10])[0], 10
            else:
                more = ext.read(2)
                hlen, start = struct.unpack("<I", pre[8:10] + more)[0], 12
            if hlen > _NPY_OVERHEAD:
                self.fail(f"{key}: its array header is {hlen:,} bytes long")
            head = ext.read(hlen)
            m = _NPY_HEADER.fullmatch(head.decode("latin-1"))
            if len(head) != hlen or m is None:
                self.fail(f"{key}: its array header is damaged")
            dtype = dtypes.get(m["descr"])
            if dtype is None:
                self.fail(f"{key} holds {m['descr']!r} values, not {' or '.join(sorted(set(map(str, dtypes.values()))))}")
            got = tuple(int(s) for s in m["shape"].replace(",", " ").split())
            if shape is not None and got != shape:
                raise ShapeError(f"{self.name}: {key.split('/', 1)[-1]} has shape {got} but this network needs "
                                 f"{shape}")
            size = math.prod(got)
            if size > max_size:
                self.fail(f"{key} claims {size:,} values, more than {max_size:,}")
            nbytes = size * dtype.itemsize
            if info.file_size != start + hlen + nbytes:
                self.fail(f"{key} declares {info.file_size:,} bytes but its array needs {start + hlen + nbytes:,}")
            data = ext.read(nbytes)
            if len(data) != nbytes or ext.read(1):   # reading to the end checks the zip's CRC
                self.fail(f"{key} is truncated")
        return np.frombuffer(data, dtype).reshape(got, order="F" if m["fortran"] == "True" else "C")

    def header(self) -> dict[str, Any]:
        raw = self.read_array("header", {"|u1": np.dtype(np.uint8)}, None, MAX_HEADER_BYTES)
        if raw.ndim != 1:
            self.fail("the header is damaged")
        try:
            header = json.loads(raw.tobytes().decode("utf-8"))
        except RecursionError:
            self.fail("the header nests too deeply")
        except (ValueError, UnicodeDecodeError):
            self.fail("the header is not valid JSON")
        if _json_depth(header) > MAX_JSON_DEPTH:
            self.fail("the header nests too deeply")
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            self.fail("not a Backprop Studio weights file")
        version = header.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.fail(f"the header's version {version!r} is not valid")
        if version > VERSION:
            self.fail(f"written by a newer version ({version!r})")
        return header

    def arrays_for(self, network: Network) -> dict[str, np.ndarray]:
        """Every parameter and buffer `network` needs, read and checked (ShapeError when they do not fit)."""
        expected = {**{f"param/{k}": v.shape for k, v in network.named_parameters()},
                    **{f"buffer/{k}": v.shape for k, v in network.named_buffers()}}
        present = {k for k in self.entries if k != "header"}
        missing = sorted(k.split("/", 1)[1] for k in expected.keys() - present)
        extra = sorted(k.split("/", 1)[1] for k in present - expected.keys())
        if missing or extra:
            raise ShapeError(f"{self.name}: the weights do not fit this network (missing {missing or 'none'}, "
                             f"unexpected {extra[:20] or 'none'})")
        state = {}
        for key, shape in expected.items():
            a = self.read_array(key, _FLOATS, tuple(shape), MAX_PARAMS)
            if not np.isfinite(a).all():
                self.fail(f"{key.split('/', 1)[1]} contains NaN or infinity")
            state[key.split("/", 1)[1]] = a
        return state


def read_weights(path: str | os.PathLike, network: Network | None = None) -> tuple[dict[str, Any], dict | None]:
    """(header, state) of a weights file, checked as the module says; state (name -> array) is read only when
    `network` is given, for its parameters and buffers. FileFormatError / ShapeError otherwise."""
    name = _name(path)
    with open_bounded(path, MAX_FILE_BYTES, "weights file") as (fh, _size):
        try:
            reader = _Reader(fh, name)
            header = reader.header()
            state = reader.arrays_for(network) if network is not None else None
        except StudioError:
            raise
        except MemoryError:
            raise FileFormatError(f"{name}: the file asks for more memory than there is") from None
        except _ZIP_ERRORS as exc:
            raise FileFormatError(f"{name}: cannot read weights ({type(exc).__name__}: {str(exc)[:200]})") from None
    return header, state


def _network_from_header(header: Mapping[str, Any], name: str) -> Network:
    spec = header.get("network")
    try:
        if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
            raise TypeError("no layer list")
        return Network(tuple(spec["input_shape"]), [layer_from_dict(d) for d in spec["layers"]], loss=spec["loss"],
                       reg=spec["reg"], reg_kind=spec["reg_kind"], init=spec["init"], bias_init=spec["bias_init"],
                       seed=spec["seed"], dtype=_dtype(spec["dtype"]),
                       label_smoothing=spec.get("label_smoothing", 0.0),
                       **({"temperature": spec["temperature"]} if "temperature" in spec else {}))
    except FileFormatError as exc:
        raise FileFormatError(f"{name}: {exc}") from None
    except (KeyError, TypeError, ValueError, OverflowError, StudioError) as exc:
        raise FileFormatError(f"{name}: bad network description ({str(exc)[:300]})") from None


def _dtype(text: Any) -> np.dtype:
    if text not in ("float32", "float64"):
        raise ValueInputError(f"dtype must be float32 or float64, got {str(text)[:40]!r}")
    return np.dtype(text)


def _load_into(network: Network, state: Mapping[str, np.ndarray], name: str) -> None:
    try:
        network.load_state_dict(state, strict=True)
    except ValueInputError as exc:          # a value the network refuses (a negative running variance, ...)
        raise FileFormatError(f"{name}: {exc}") from None


def load_weights(network: Network, path: str | os.PathLike) -> None:
    """Copy the file's parameters and buffers into `network` in place; nothing changes on any error."""
    _, state = read_weights(path, network)
    _load_into(network, state, _name(path))


def load_network(path: str | os.PathLike) -> Network:
    """A network rebuilt from the file's architecture, with its weights."""
    name = _name(path)
    with open_bounded(path, MAX_FILE_BYTES, "weights file") as (fh, _size):
        try:
            reader = _Reader(fh, name)
            net = _network_from_header(reader.header(), name)
            state = reader.arrays_for(net)
        except ShapeError as exc:           # the file's own arrays do not fit its own architecture: damaged
            raise FileFormatError(str(exc)) from None
        except StudioError:
            raise
        except MemoryError:
            raise FileFormatError(f"{name}: the file asks for more memory than there is") from None
        except _ZIP_ERRORS as exc:
            raise FileFormatError(f"{name}: cannot read weights ({type(exc).__name__}: {str(exc)[:200]})") from None
    _load_into(net, state, name)
    return net
