"""scikit-learn's habits for everything that learns or is configured: parameters are the plain
``__init__`` arguments stored under their own names, `get_params` reads them back from the
signature (as ``sklearn.base.BaseEstimator.get_params`` does), learned state ends in ``_``, and
one `check_is_fitted` says when a model is used before `fit`.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from semret.errors import SemretError

__all__ = ["Configurable", "check_is_fitted", "init_parameter_names"]


def init_parameter_names(cls: type) -> list[str]:
    """The names of ``cls.__init__``'s parameters, besides ``self`` and ``*args``/``**kwargs``."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]


class Configurable:
    """Mixin: `get_params` from the ``__init__`` signature. Subclasses store every parameter as an
    attribute of the same name; those named in ``_unsaved_params`` (callbacks, thread counts) are
    left out of what `get_params` returns and so out of files."""

    _unsaved_params: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def param_names(cls) -> list[str]:
        """The parameters `get_params` returns, in signature order."""
        return [name for name in init_parameter_names(cls) if name not in cls._unsaved_params]

    def get_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters and their values, e.g. to save or show."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.get_params().items())
        return f"{type(self).__name__}({shown})"


def check_is_fitted(model: Any, attribute: str | None = None) -> None:
    """An error naming the model unless it has been fitted: ``attribute`` (default: every public
    attribute ending in ``_``) is set and not None."""
    names = [attribute] if attribute else [n for n in vars(model) if n.endswith("_") and not n.startswith("_")]
    if not names or any(getattr(model, name, None) is None for name in names):
        kind = f"{model.kind} index" if isinstance(getattr(model, "kind", None), str) else type(model).__name__
        raise SemretError(
            f"the {kind} is not fitted yet (it must be fitted before use): call fit() or load a fitted one"
        )
