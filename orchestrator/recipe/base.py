"""The base of every recipe section: strict, described, immutable after validation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A recipe section. Unknown keys are errors, so a typo never silently becomes a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, validate_default=True)
