"""Lazy package attributes (PEP 562): names resolved from submodules on first access.

Keeps ``import gangen.<package>`` cheap (no torch import) while the package still offers
its public names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str | None]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``exports`` maps a public name to the submodule
    defining it, or to None when the name is itself a submodule.

    >>> getattr_ = lazy_getattr("gangen.distances", {"measuring": None, "log_phi": "measuring"})
    >>> getattr_("measuring").__name__
    'gangen.distances.measuring'
    >>> getattr_("nothing")
    Traceback (most recent call last):
    ...
    AttributeError: module 'gangen.distances' has no attribute 'nothing'
    """
    exports = dict(exports)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        submodule = exports[name]
        if submodule is None:
            return importlib.import_module(f"{package}.{name}")
        return getattr(importlib.import_module(f"{package}.{submodule}"), name)

    return __getattr__
