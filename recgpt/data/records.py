"""Domain records shared by every dataset adapter, the graph and the evaluation.

These pydantic models are the boundary between raw files and the rest of recgpt: an adapter
either produces valid records or raises a `DataError` naming file, record and field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 2000


class Item(BaseModel):
    """One catalogue item. `category_path` runs from the broadest to the leaf category."""

    model_config = ConfigDict(frozen=True)

    item_id: str = Field(min_length=1, max_length=128)
    title: str = Field(min_length=1)
    category_path: tuple[str, ...] = Field(
        default=(), description="Hierarchical category path, broadest first (may be empty)."
    )
    genres: tuple[str, ...] = Field(
        default=(), description="Flat labels (MovieLens genres); empty for hierarchical catalogues."
    )
    brand: str | None = None
    description: str = ""

    @field_validator("title", mode="before")
    @classmethod
    def _clip_title(cls, value: object) -> object:
        if isinstance(value, str):
            value = " ".join(value.split())[:MAX_TITLE_CHARS]
        return value

    @field_validator("description", mode="before")
    @classmethod
    def _clip_description(cls, value: object) -> object:
        if value is None:
            return ""
        if isinstance(value, str):
            return " ".join(value.split())[:MAX_DESCRIPTION_CHARS]
        return value

    @property
    def category(self) -> str:
        """The category path as one readable string ('A > B > C'); '' when unknown."""
        return " > ".join(self.category_path)

    @property
    def leaf_category(self) -> str:
        return self.category_path[-1] if self.category_path else ""

    def text(self) -> str:
        """Text indexed in the vector store: title plus category path."""
        return f"{self.title} | {self.category}" if self.category_path else self.title


class Interaction(BaseModel):
    """One behaviour event. `timestamp` is unix seconds when the dataset has it."""

    model_config = ConfigDict(frozen=True)

    item_id: str = Field(min_length=1, max_length=128)
    timestamp: int | None = None
    action: str = Field(default="purchase", min_length=1, max_length=32)
    rating: float | None = None


class UserProfile(BaseModel):
    """What is known about the user besides behaviour; every field is optional."""

    age: int | None = Field(default=None, ge=0, le=130)
    gender: str | None = None
    occupation: str | None = None
    location: str | None = None
    extra: dict[str, str] = Field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        if self.age is not None:
            parts.append(f"age {self.age}")
        if self.gender:
            parts.append(f"gender {self.gender}")
        if self.occupation:
            parts.append(f"occupation {self.occupation}")
        if self.location:
            parts.append(f"location {self.location}")
        parts.extend(f"{k} {v}" for k, v in sorted(self.extra.items()))
        return ", ".join(parts) if parts else "unknown"


class UserHistory(BaseModel):
    """A user's interactions, oldest first, and profile."""

    user_id: str = Field(min_length=1, max_length=128)
    interactions: list[Interaction] = Field(default_factory=list)
    profile: UserProfile = Field(default_factory=UserProfile)
