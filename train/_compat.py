"""Make `import timm` work beside torch 2.13.0+cpu, whose pip-resolved torchvision is a CUDA build.

That torchvision fails at import with `RuntimeError: operator torchvision::nms does not exist`
(its `_C.so` cannot load). Only the import needs the operator schemas; nothing here calls them,
so we declare them and import again. Where torchvision imports normally this does nothing.
See ../shared/notes/toolchain.md.
"""
from __future__ import annotations

import sys

_MISSING_OPERATOR = "operator torchvision::nms does not exist"
_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # kept alive for the process: dropping it would unregister the schemas


def ensure_torchvision() -> None:
    """Import torchvision, declaring its missing operator schemas if (and only if) needed."""
    global _library
    try:
        import torchvision  # noqa: F401
        return
    except RuntimeError as error:
        if _MISSING_OPERATOR not in str(error):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS:
        _library.define(schema)
    import torchvision  # noqa: F401


def import_timm():
    """`import timm`, after `ensure_torchvision`. Returns the module."""
    ensure_torchvision()
    import timm

    return timm
