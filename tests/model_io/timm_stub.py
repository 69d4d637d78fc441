"""TEST-ONLY workaround: import timm on a machine where torchvision cannot be imported.

Why: timm >= 1.0 imports ``torchvision`` at package import time (``timm.layers.create_norm`` and
``timm.layers.norm_act`` need ``torchvision.ops.misc.FrozenBatchNorm2d``; ``timm.data`` subclasses
``torchvision.transforms`` classes). PyPI's torchvision wheels are built against the CUDA torch, not
the pinned CPU build (torch 2.13.0+cpu), so torchvision is not installed in this venv.

What: :func:`import_timm` first tries a plain ``import timm``. Only if that fails because of
torchvision does it put a *stub* ``torchvision`` package into ``sys.modules`` -- modules whose
attributes are placeholder classes that can be subclassed, compared and used as dict keys but raise
on instantiation -- imports timm, and then REMOVES the stub from ``sys.modules`` again, so no other
code in the test session ever sees a fake torchvision. Building a ``VisionTransformer`` and reading
its ``state_dict`` uses no torchvision code; timm's data pipeline (transforms, datasets) and
FrozenBatchNorm would raise if used. Never import this outside tests.
"""
from __future__ import annotations

import importlib
import sys
import types

__all__ = ["import_timm", "STUBBED_MODULES"]

# The torchvision modules timm imports at package import time (timm 1.0.x).
STUBBED_MODULES = ("torchvision", "torchvision.ops", "torchvision.ops.misc",
                   "torchvision.transforms", "torchvision.transforms.functional",
                   "torchvision.datasets")


class _PlaceholderMeta(type):
    """Attribute access on a placeholder class yields another (cached) placeholder class."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{cls.__qualname__}.{name}", cls.__dict__["_cache"])


def _placeholder(qualname: str, cache: dict):
    if qualname not in cache:
        def _refuse(self, *args, **kwargs):
            raise RuntimeError(f"torchvision stub (tests only): {qualname} is not available")
        cache[qualname] = _PlaceholderMeta(qualname.rsplit(".", 1)[-1], (),
                                           {"__init__": _refuse, "_cache": {},
                                            "__qualname__": qualname})
    return cache[qualname]


class _StubModule(types.ModuleType):
    def __init__(self, name: str):
        super().__init__(name, "TEST-ONLY torchvision stub (tests/model_io/timm_stub.py)")
        self.__path__ = []  # a package: submodules resolve through sys.modules only
        self._cache = {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder(f"{self.__name__}.{name}", self._cache)


def _purge(prefix: str) -> None:
    for mod in [m for m in sys.modules if m == prefix or m.startswith(prefix + ".")]:
        del sys.modules[mod]


def import_timm():
    """Return the ``timm`` module, stubbing torchvision only if the real one cannot be imported."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    try:
        return importlib.import_module("timm")
    except (ImportError, RuntimeError, AttributeError) as e:
        if "torchvision" not in repr(e) and not isinstance(e, ModuleNotFoundError):
            raise
        _purge("timm")
        _purge("torchvision")
    stubs = {name: _StubModule(name) for name in STUBBED_MODULES}
    for name, mod in stubs.items():
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(stubs[parent], child, mod)
    sys.modules.update(stubs)
    try:
        return importlib.import_module("timm")
    finally:
        for name in STUBBED_MODULES:   # timm keeps its references; nobody else sees the stub
            sys.modules.pop(name, None)
