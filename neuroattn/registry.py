"""Name -> factory registries, one per model family (fMRI encoders, EEG decoders, attention
modules, backbones, data formats).

A registry is the one list of a family's names: the workflow's rules, the config schema's enums
(checked equal by the tests) and the CLI read it. Each entry records its factory, the config
section that parameterises it and what it produces (``maps``, ``importance``, ...).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry:
    """One registered name.

    Attributes
    ----------
    name : str
    factory : callable
        Builds the object from keyword arguments.
    config_section : str or None
        Dotted config key whose mapping holds the factory's keyword arguments (e.g.
        ``encode.routing``), None when it takes none.
    produces : tuple of str
        What the object's outputs include beyond predictions (e.g. ``("maps",)``).
    meta : dict
        Anything else the family needs to know (e.g. ``{"trained": True}``).
    """

    name: str
    factory: Callable
    config_section: str | None = None
    produces: tuple = ()
    meta: dict = field(default_factory=dict)


class Registry:
    """A family's names, in registration order.

    Parameters
    ----------
    family : str
        What the names are, for error messages ("fMRI encoder", "EEG decoder", ...).
    """

    def __init__(self, family: str):
        self.family = family
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, factory: Callable | None = None, *, config_section: str | None = None,
                 produces=(), **meta):
        """Register ``factory`` under ``name``; usable as a decorator when ``factory`` is None."""
        def add(f):
            if name in self._entries:
                raise ValueError(f"{self.family} {name!r} is registered twice")
            self._entries[name] = Entry(name, f, config_section, tuple(produces), dict(meta))
            return f
        return add(factory) if factory is not None else add

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.family} {name!r} (known: {', '.join(self._entries)})") from None

    def check_kwargs(self, name: str, kwargs: dict) -> None:
        """Refuse keyword arguments the factory does not take, naming them and the allowed ones."""
        factory = self[name].factory
        target = factory.__init__ if inspect.isclass(factory) else factory
        sig = inspect.signature(target)
        if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return
        allowed = [n for n in sig.parameters if n != "self"]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            where = f" (config key {self[name].config_section})" if self[name].config_section else ""
            raise TypeError(f"{self.family} {name!r}{where}: unknown parameter(s) {unknown} "
                            f"(allowed: {', '.join(allowed)})")

    def build(self, name: str, **kwargs) -> Any:
        """``factory(**kwargs)`` of ``name``; unknown names and keyword arguments are refused."""
        self.check_kwargs(name, kwargs)
        return self[name].factory(**kwargs)
