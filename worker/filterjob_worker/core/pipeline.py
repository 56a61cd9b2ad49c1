"""A validated, ordered list of filter steps, and how to apply it to an image.

Validation collects every problem with its location
(``filters[2] (blur): radius must be between 0 and 100, got -1``) so that a user
fixes a spec in one pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from filterjob_worker.core.catalog import CATALOG
from filterjob_worker.core.errors import PermanentTaskError, SpecError, did_you_mean, shown
from filterjob_worker.core.filterdef import FilterDef
from filterjob_worker.core.params import ParamError


@dataclass(frozen=True)
class Step:
    """One filter with its validated parameters (defaults filled in)."""

    index: int
    filter: FilterDef
    params: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"filters[{self.index}] ({self.filter.name})"

    def apply(self, image: Image.Image) -> Image.Image:
        if self.filter.geometric or image.mode in ("L", "RGB"):
            return self.filter.apply(image, self.params)
        # Colour filters work on the colour bands only; transparency is kept as is.
        alpha = image.getchannel("A")
        out = self.filter.apply(image.convert(image.mode[:-1] or "L"), self.params)
        out = out.convert("LA" if out.mode == "L" else "RGBA")
        out.putalpha(alpha)
        return out


def _parse_step(index: int, raw: Any) -> tuple[Step | None, list[str]]:
    where = f"filters[{index}]"
    if not isinstance(raw, Mapping):
        return None, [f"{where}: must be a mapping with a 'name', got {shown(raw)}"]
    name = raw.get("name")
    if not isinstance(name, str) or name not in CATALOG:
        known = ", ".join(CATALOG)
        given = "missing" if name is None else f"unknown filter {shown(name)}"
        return None, [f"{where}: name is {given}{did_you_mean(name, CATALOG)}; known filters: {known}"]
    fdef = CATALOG[name]
    where = f"{where} ({name})"
    problems: list[str] = []
    params: dict[str, Any] = {}
    for key in raw:
        if key != "name" and key not in fdef.param_names:
            allowed = ", ".join(sorted(fdef.param_names)) or "none"
            hint = did_you_mean(key, fdef.param_names)
            problems.append(f"{where}: unknown parameter {shown(key)}{hint}; parameters: {allowed}")
    for param in fdef.params:
        if param.name in raw:
            try:
                params[param.name] = param.coerce(raw[param.name])
            except ParamError as e:
                problems.append(f"{where}: {e}")
        elif param.required:
            problems.append(f"{where}: {param.name} is required")
        elif param.default is not None:
            params[param.name] = param.default
    if not problems and (problem := fdef.check({k: v for k, v in params.items() if k in raw})):
        problems.append(f"{where}: {problem}")
    if problems:
        return None, problems
    return Step(index=index, filter=fdef, params=params), []


@dataclass(frozen=True)
class Pipeline:
    """Validated filter steps, applied in order."""

    steps: tuple[Step, ...]

    @classmethod
    def parse(cls, raw: Any) -> Pipeline:
        """Validate raw steps (from YAML/JSON); raise :class:`SpecError` listing every problem."""
        if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
            raise SpecError(f"filters must be a list of steps, got {shown(raw)}")
        steps: list[Step] = []
        problems: list[str] = []
        for index, item in enumerate(raw):
            step, found = _parse_step(index, item)
            problems.extend(found)
            if step is not None:
                steps.append(step)
        if problems:
            raise SpecError(problems)
        return cls(tuple(steps))

    def apply(self, image: Image.Image) -> Image.Image:
        """Run every step; a step that cannot apply to this image fails the task."""
        for step in self.steps:
            try:
                image = step.apply(image)
            except PermanentTaskError as e:
                raise PermanentTaskError(f"{step.label}: {e}") from e
            except (ValueError, OSError, MemoryError) as e:
                raise PermanentTaskError(f"{step.label}: {e}") from e
        return image

    def __len__(self) -> int:
        return len(self.steps)
