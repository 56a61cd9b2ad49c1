"""The base of the FilterJob API's models: how fields are spelled and how a ranged number is declared.

Every section of the API (``locations``, ``workload``, ``spec``) derives from :class:`ApiModel`,
so the YAML's camelCase names, the refusal of unknown fields and the CRD descriptions (a model's
docstring, a field's ``description``) work alike everywhere.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from filterjob_worker.core.limits import Range


class ApiModel(BaseModel):
    """Models of the API; each one's docstring is its description in the CRD, as each field's is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def ranged(limits: Range[Any], description: str) -> Any:
    """A number field with the default and range said once in ``filterjob_worker.core.limits``."""
    if limits.exclusive_minimum:
        return Field(default=limits.default, gt=limits.minimum, le=limits.maximum, description=description)
    return Field(default=limits.default, ge=limits.minimum, le=limits.maximum, description=description)
