"""Read the pickles of models trained elsewhere without running their code and without torch.

SB3 model zips, `vecnormalize.pkl` and hmmlearn pickles are Python pickles; `pickle.load` on a file from
someone else runs whatever it names. Following the Python documentation's "Restricting Globals"
(https://docs.python.org/3/library/pickle.html#restricting-globals), `find_class` here hands out:
- the few numpy/collections constructors that rebuild plain data (arrays, dtypes, scalars, deques);
- inert stand-ins (`Stub`) for the classes of the libraries that wrote the file (hmmlearn,
  stable-baselines3, gymnasium, torch.nn, numpy.random): they record the pickled state and do nothing,
  so neither those libraries nor torch need to be installed;
- nothing else: any other global is refused with an error naming the file.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from typing import Any, Callable

import numpy as np

from oracle_core import InputError

# Constructors of plain data, by (module, name). numpy 2 pickles name `numpy._core`, numpy 1 `numpy.core`.
_DATA: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "deque"): collections.deque,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _core in ("numpy._core", "numpy.core"):
    _DATA[(f"{_core}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
    _DATA[(f"{_core}.multiarray", "scalar")] = np._core.multiarray.scalar
    _DATA[(f"{_core}.numeric", "_frombuffer")] = np._core.numeric._frombuffer

# Libraries whose classes become inert stand-ins: we read their pickled attributes, never their code.
_STUB_PREFIXES = ("hmmlearn.", "sklearn.", "stable_baselines3.", "gymnasium.", "gym.", "numpy.random.", "torch.nn.")


class Stub:
    """An inert stand-in for a pickled class: keeps the state pickle gives it, runs nothing."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Stub":
        obj = super().__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        # pickle's BUILD: a dict of attributes, or (dict, slots) for slotted classes.
        if isinstance(state, tuple) and len(state) == 2 and all(isinstance(x, (dict, type(None))) for x in state):
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state

    def __call__(self, *args: Any, **kwargs: Any) -> "Stub":
        return self

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


_stub_classes: dict[str, type[Stub]] = {}


def stub_class(qualname: str) -> type[Stub]:
    """One Stub subclass per pickled class name, so `isinstance`/`qualname` tell them apart."""
    if qualname not in _stub_classes:
        _stub_classes[qualname] = type(qualname.rsplit(".", 1)[-1], (Stub,), {"qualname": qualname})
    return _stub_classes[qualname]


def qualname_of(obj: Any) -> str:
    """The pickled class name of a stub instance or stub class ('' for plain data)."""
    if isinstance(obj, Stub) or (isinstance(obj, type) and issubclass(obj, Stub)):
        return obj.qualname
    return ""


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, where: str, extra: dict[tuple[str, str], Any] | None = None,
                 persistent_load: Callable[[Any], Any] | None = None):
        super().__init__(io.BytesIO(data))
        self.where = where
        self.extra = extra or {}
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self.extra:
            return self.extra[key]
        if key in _DATA:
            return _DATA[key]
        if module.startswith(_STUB_PREFIXES):
            return stub_class(f"{module}.{name}")
        raise InputError(
            f"{self.where}: the pickle names {module}.{name}, which a model file has no reason to hold; "
            "refusing to load it (only numpy data and hmmlearn / stable-baselines3 / gymnasium classes are read)"
        )

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise InputError(f"{self.where}: unexpected persistent id in the pickle; not a model file")
        return self._persistent(pid)


def loads(data: bytes, where: str, extra: dict[tuple[str, str], Any] | None = None,
          persistent_load: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle `data` with the restrictions above; any failure is an InputError naming `where`."""
    try:
        return RestrictedUnpickler(data, where, extra, persistent_load).load()
    except InputError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, struct.error) as err:
        raise InputError(f"{where}: not a readable pickle (truncated or corrupt?): {type(err).__name__}: {err}") from None

