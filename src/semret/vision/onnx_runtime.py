"""A frozen backbone's feature network on ONNX Runtime: exported once, cached on disk, checked against torch.

`onnx_features(backbone, cache_root)` gives an `OnnxFeatures`: an ``onnxruntime.InferenceSession``
(CPU, intra-op threads = the CPUs this process may use, every graph optimisation) of
``backbone.module`` (preprocessed batch (n, 3, size, size) -> features (n, feature_dim)). The
network is exported with ``torch.onnx.export`` (https://pytorch.org/docs/stable/onnx.html): by the
TorchScript exporter (``dynamo=False``: quick, offline), or where a module pools adaptively by a
factor that is not whole, which that exporter cannot export (AlexNet below 224 px), by the
``torch.export``-based one (``dynamo=True``, onnxscript); the batch axis is dynamic.

The file lies in ``<cache_root>/onnx/``, named by the backbone, its `weights_id`, the input size and
a hash of everything that determines it (those three, a SHA-256 of the module's state dict, the
opset, the torch and onnx versions, this module's format version); the key is also stored in the
model's metadata. The state-dict digest makes a network with other weights under the same
`weights_id` (an unseeded random draw, a fine-tuned module not saved yet) get its own file.
Written atomically (a temporary file, then a rename).

Every session that is made (after an export, or from a cached file, once per process) is checked on
a probe batch: ORT's features must equal torch's within ``TOLERANCE`` times the largest feature
magnitude (at least 1). A fresh export beyond it is a `SemretError`; a cached file that cannot be
loaded, holds another key or fails the check is exported again, with an `OnnxCacheWarning`; a file
that cannot be written (a read-only cache) is a warning too, and the exported network runs from memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from semret.errors import SemretError
from semret.vision.backbones import Backbone, weights_id

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "ENGINES",
    "ONNX_BACKBONES",
    "TOLERANCE",
    "OnnxCacheWarning",
    "OnnxFeatures",
    "available_cpus",
    "check_engine",
    "clear_sessions",
    "loaded_session",
    "onnx_features",
    "resolve_engine",
]

#: auto: ONNX Runtime for the frozen (pretrained) backbones below, torch for the rest.
ENGINES: tuple[str, ...] = ("auto", "onnx", "torch")
#: The backbones that run on ONNX Runtime under "auto": small-cnn is trained in semret and quick
#: in torch at its 32 px, so it stays there unless "onnx" is asked for.
ONNX_BACKBONES = frozenset({"alexnet", "efficientnet-lite0", "resnet18", "resnet34", "resnet50"})
#: Largest |ORT - torch| on the probe batch, relative to max(1, largest |torch feature|).
TOLERANCE = 1e-4
OPSET = 18
FORMAT_VERSION = 1
PROBE_IMAGES = 2
INPUT_NAME, OUTPUT_NAME = "input", "features"
_KEY_FIELD = "semret.key"
_DIFF_FIELD = "semret.export_max_abs_diff"
_EXPORTER_FIELD = "semret.exporter"
_MAX_SESSIONS = 2  # ResNet-50's session holds ~100 MB, AlexNet's ~230 MB


class OnnxCacheWarning(UserWarning):
    """A cached .onnx file could not be used and the network is exported again (or could not be written)."""


@dataclass(frozen=True)
class OnnxFeatures:
    """A verified ONNX Runtime session of a backbone's feature network."""

    path: Path
    session: onnxruntime.InferenceSession
    #: Whether this call exported the file (False: it was read from the cache or this process' sessions).
    exported: bool
    #: The largest |ORT - torch| over the probe batch, measured when the session was made.
    max_abs_diff: float
    #: The exporter used: "torchscript" or "dynamo".
    exporter: str
    feature_dim: int

    def run(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Features (n, feature_dim) of a preprocessed float32 batch (n, 3, size, size)."""
        outputs = self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(outputs[0], dtype=np.float32)


_SESSIONS: OrderedDict[Path, OnnxFeatures] = OrderedDict()
_DIGESTS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[tuple[int, int], ...], str]] = weakref.WeakKeyDictionary()


def check_engine(engine: str) -> str:
    """``engine`` if it is one of `ENGINES`, else a `SemretError`."""
    if not isinstance(engine, str) or engine not in ENGINES:
        raise SemretError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def resolve_engine(engine: str, backbone: Backbone) -> Literal["onnx", "torch"]:
    """The engine that computes ``backbone``'s features: ``engine``, or for "auto" ONNX Runtime for
    the backbones of `ONNX_BACKBONES` and torch for the others."""
    if check_engine(engine) == "auto":
        return "onnx" if backbone.name in ONNX_BACKBONES else "torch"
    return "onnx" if engine == "onnx" else "torch"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS tells it, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def clear_sessions() -> None:
    """Forget this process' sessions: the next `onnx_features` reads (or exports) the file again."""
    _SESSIONS.clear()


def loaded_session(backbone: Backbone, cache_root: str | Path) -> OnnxFeatures | None:
    """The session `onnx_features` made in this process for ``backbone`` (None if none is kept):
    what a caller reports after features were computed, without exporting anything."""
    return _SESSIONS.get(Path(cache_root) / "onnx" / _file_name(backbone, _key(backbone)))


def onnx_features(backbone: Backbone, cache_root: str | Path) -> OnnxFeatures:
    """The verified ORT session of ``backbone``'s feature network, its file under ``<cache_root>/onnx/``
    (exported there the first time; see the module doc)."""
    key = _key(backbone)
    path = Path(cache_root) / "onnx" / _file_name(backbone, key)
    known = _SESSIONS.get(path)
    if known is not None:
        _SESSIONS.move_to_end(path)
        return known
    ready = _load_cached(path, key, backbone) if path.exists() else None
    if ready is None:
        ready = _export_and_load(path, key, backbone)
    _SESSIONS[path] = replace(ready, exported=False)  # what later calls get
    while len(_SESSIONS) > _MAX_SESSIONS:
        _SESSIONS.popitem(last=False)
    return ready


# --- internals ---------------------------------------------------------------------------------


def _key(backbone: Backbone) -> dict[str, Any]:
    """Everything that determines the exported file."""
    import onnx

    return {
        "format_version": FORMAT_VERSION,
        "backbone": backbone.name,
        "weights": weights_id(backbone),
        "image_size": backbone.input_size,
        "feature_dim": backbone.feature_dim,
        "state_sha256": _state_digest(backbone.module),
        "opset": OPSET,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }


def _file_name(backbone: Backbone, key: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    readable = f"{backbone.name}_{key['weights']}_{backbone.input_size}px".replace(":", "-").replace("/", "-")
    return f"{readable}_{digest}.onnx"


def _state_digest(module: nn.Module) -> str:
    """SHA-256 of the module's state dict (names, dtypes, shapes, bytes); remembered per module
    while no tensor of it changes (torch bumps a tensor's version on every in-place update)."""
    state = module.state_dict(keep_vars=True)
    versions = tuple((tensor.data_ptr(), tensor._version) for tensor in state.values())
    remembered = _DIGESTS.get(module)
    if remembered is not None and remembered[0] == versions:
        return remembered[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(value.view(torch.uint8).numpy())
    _DIGESTS[module] = (versions, digest.hexdigest())
    return digest.hexdigest()


def _session(source: Path | bytes) -> onnxruntime.InferenceSession:
    """A CPU session: intra-op threads = available CPUs, every graph optimisation."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = available_cpus()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise
    model = str(source) if isinstance(source, Path) else source
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _load_cached(path: Path, key: dict[str, Any], backbone: Backbone) -> OnnxFeatures | None:
    """The cached file's verified session, or None (with a warning) when it cannot be used."""
    try:
        session = _session(path)
        stored = session.get_modelmeta().custom_metadata_map
    except Exception as exc:  # ORT raises its own exception types for unreadable models
        _warn(path, f"unreadable ({_first_line(exc)})")
        return None
    if stored.get(_KEY_FIELD) != json.dumps(key, sort_keys=True):
        _warn(path, "its metadata describe another network")
        return None
    try:
        difference, scale = _difference(session, backbone)
    except Exception as exc:  # a model that loads but cannot run this input
        _warn(path, f"it does not run ({_first_line(exc)})")
        return None
    if difference > TOLERANCE * scale:
        _warn(path, f"its features differ from torch's by {difference:.3g} on the probe batch")
        return None
    exporter = stored.get(_EXPORTER_FIELD, "?")
    return OnnxFeatures(path, session, False, difference, exporter, backbone.feature_dim)


def _export_and_load(path: Path, key: dict[str, Any], backbone: Backbone) -> OnnxFeatures:
    """Export, check on the probe batch, then write the file (atomically) and return its session."""
    import onnx

    exported, exporter = _export(backbone)
    model = onnx.load_from_string(exported)
    try:
        session = _session(model.SerializeToString())
        difference, scale = _difference(session, backbone)
    except Exception as exc:
        raise SemretError(
            f"ONNX Runtime cannot run the exported {backbone.name} ({_first_line(exc)}); use engine 'torch'"
        ) from exc
    if difference > TOLERANCE * scale:
        raise SemretError(
            f"the ONNX export of {backbone.name} ({backbone.input_size} px) differs from torch by {difference:.3g} "
            f"on the probe batch, beyond the tolerance ({TOLERANCE:g} x {scale:.3g}); use engine 'torch'"
        )
    fields = {_KEY_FIELD: json.dumps(key, sort_keys=True), _DIFF_FIELD: repr(difference), _EXPORTER_FIELD: exporter}
    for name, value in fields.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = name, value
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(model.SerializeToString())
        os.replace(temporary, path)  # never a half-written model under the real name
    except OSError as exc:  # a read-only cache: run the exported network from memory
        temporary.unlink(missing_ok=True)
        message = f"{path}: cannot write the exported ONNX network ({exc}); running it without caching it"
        warnings.warn(message, OnnxCacheWarning, stacklevel=3)
    return OnnxFeatures(path, session, True, difference, exporter, backbone.feature_dim)


def _export(backbone: Backbone) -> tuple[bytes, str]:
    """The module as ONNX bytes (dynamic batch axis), and which exporter made them."""
    module, size = backbone.module, backbone.input_size
    example = torch.zeros(PROBE_IMAGES, 3, size, size)
    with _eval_mode(module), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings
        try:
            if _torchscript_can_pool(module, example):
                return _torchscript_export(module, example), "torchscript"
            return _dynamo_export(module, example), "dynamo"
        except Exception as exc:
            raise SemretError(
                f"cannot export {backbone.name} ({size} px) to ONNX ({_first_line(exc)}); use engine 'torch'"
            ) from exc


def _torchscript_can_pool(module: nn.Module, example: torch.Tensor) -> bool:
    """Whether every adaptive pooling of the module pools its input by a whole factor, which is all the
    TorchScript exporter can export (AlexNet pools to 6 x 6, so below 224 px it cannot)."""
    fits: list[bool] = []

    def check(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        sizes, pooled = inputs[0].shape[-2:], output.shape[-2:]
        fits.append(all(have % want == 0 for have, want in zip(sizes, pooled, strict=True)))

    pools = [layer for layer in module.modules() if isinstance(layer, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d)]
    handles = [layer.register_forward_hook(check) for layer in pools]
    try:
        module(example)
    finally:
        for handle in handles:
            handle.remove()
    return all(fits)


def _torchscript_export(module: nn.Module, example: torch.Tensor) -> bytes:
    """The TorchScript exporter (``dynamo=False``): quick and offline."""
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes file objects too
        dynamo=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=OPSET,
    )
    return buffer.getvalue()


def _dynamo_export(module: nn.Module, example: torch.Tensor) -> bytes:
    """The ``torch.export``-based exporter (``dynamo=True``, with onnxscript): slower, exports more."""
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=OPSET,
        verbose=False,
    )
    if program is None:
        raise SemretError("the exporter returned no program")
    return program.model_proto.SerializeToString()


def _probe(backbone: Backbone) -> torch.Tensor:
    """A fixed batch in the network's input space (seeded, not touching torch's global generator)."""
    generator = torch.Generator().manual_seed(0)
    size = backbone.input_size
    return torch.randn(PROBE_IMAGES, 3, size, size, generator=generator)


def _difference(session: onnxruntime.InferenceSession, backbone: Backbone) -> tuple[float, float]:
    """The probe batch's max |ORT - torch| (infinite for a wrong shape or non-finite values), and the
    scale the tolerance is relative to: max(1, largest |torch feature|)."""
    probe = _probe(backbone)
    with _eval_mode(backbone.module), torch.no_grad():
        expected = backbone.module(probe).numpy()
    found = session.run([OUTPUT_NAME], {INPUT_NAME: probe.numpy()})[0]
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if found.shape != expected.shape or not np.isfinite(found).all():
        return float("inf"), scale
    return float(np.max(np.abs(found - expected), initial=0.0)), scale


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _warn(path: Path, problem: str) -> None:
    message = f"{path}: cached ONNX network not usable ({problem}); exporting it again"
    warnings.warn(message, OnnxCacheWarning, stacklevel=4)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
