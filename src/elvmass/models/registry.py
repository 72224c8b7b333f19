"""Named models a study can run: ``elvmass study --models NAME,...`` and the experiments find them here.

A *recipe* builds a model spec for a study preset (``quick`` or ``paper``: sizes chosen to train on a
CPU). Families register their recipes with :func:`register_recipe`; a name given to ``--models`` is a
recipe's name or a group (usually the family: ``lvm_ai`` runs ``lvm_ai_original`` and ``lvm_ai_all``).

    >>> {"elvmassnet", "demographics"} <= set(model_recipes())
    True
    >>> from elvmass.experiments.study import make_preset
    >>> [s.name for s in build_models(["elvmassnet"], make_preset("quick"))]
    ['elvmassnet']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from elvmass.models.base import ModelSpec, families

_RECIPES: dict[str, tuple[Callable, str]] = {}


def register_recipe(name: str, group: str | None = None):
    """Decorator for ``fn(preset) -> ModelSpec`` (``preset``: :class:`elvmass.experiments.study.StudyPreset`)."""
    def deco(fn):
        _RECIPES[name] = (fn, group or name)
        return fn
    return deco


@register_recipe("elvmassnet")
def _elvmassnet(preset) -> ModelSpec:
    return preset.net_spec()


@register_recipe("demographics")
def _demographics(preset) -> ModelSpec:
    from elvmass.models.demographics import DemographicsSpec

    return DemographicsSpec(name="demographics", seed=preset.seed, config=preset.demographics)


def model_recipes() -> dict[str, str]:
    """Recipe name -> group, for every registered recipe (family modules are imported first)."""
    families()
    return {k: g for k, (_, g) in _RECIPES.items()}


def build_models(names: Sequence[str], preset) -> list[ModelSpec]:
    """Specs for the given recipe or group names, in the order given (groups expand in registration order)."""
    known = model_recipes()
    out, seen = [], set()
    for name in names:
        name = name.strip()
        if not name:
            continue
        matched = [k for k, g in known.items() if k == name] or [k for k, g in known.items() if g == name]
        if not matched:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(sorted(set(known) | set(known.values())))}")
        for k in matched:
            if k not in seen:
                seen.add(k)
                out.append(_RECIPES[k][0](preset))
    return out
