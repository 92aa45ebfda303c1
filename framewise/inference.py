"""One way to load and run a model: a small :class:`InferenceModel` per model (as Immich's
machine-learning service does), loaded once per process and called for every batch.

Every model says where its file comes from (a ``FRAMEWISE_*`` setting, or a package that the
install put on disk), so a missing file is always the same :class:`ModelMissing` error naming
the file and the setting that points at it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self


class ModelMissing(RuntimeError):
    """A model file is not installed; the message names the file and the setting."""

    def __init__(self, path: Path | str, setting: str) -> None:
        super().__init__(f"model {path} not found (set {setting}, or run `framewise models`)")
        self.path = Path(path)
        self.setting = setting


@dataclass(frozen=True)
class ModelCard:
    """What `framewise models` and docs/models.md say of one model file."""

    role: str  # "tag classifier", "face detector", …
    name: str
    license: str
    source: str
    commercial_use: bool


class InferenceModel(ABC):
    """``load()`` once (idempotent), then ``predict()`` per batch; subclasses implement
    ``_load`` and ``_predict``."""

    card: ModelCard

    def __init__(self) -> None:
        self.loaded = False

    def load(self) -> Self:
        if not self.loaded:
            self._load()
            self.loaded = True
        return self

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        if not self.loaded:
            self.load()
        return self._predict(*args, **kwargs)

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _predict(self, *args: Any, **kwargs: Any) -> Any: ...


def require_file(path: Path, setting: str) -> Path:
    if not path.is_file():
        raise ModelMissing(path, setting)
    return path
