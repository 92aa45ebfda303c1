"""``framewise models``: the files under ``FRAMEWISE_MODELS_DIR``, and fetching a model pack
where the internet is reachable (checksum verified)."""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from pathlib import Path

from framewise.config import Settings

# insightface's packs (non-commercial research use only; see docs/models.md). Their archives
# are published without checksums, so `fetch` needs the expected sha256 from the operator.
PACK_URLS = {
    "buffalo_l": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
    "buffalo_m": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_m.zip",
    "buffalo_s": "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_s.zip",
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path) -> str:
    """What an ONNX file is, from its signature (as insightface's router decides)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # a corrupt file is reported, not fatal
        return f"unreadable ({exc.__class__.__name__})"
    shape = session.get_inputs()[0].shape
    outputs = session.get_outputs()
    side = shape[2] if len(shape) == 4 else None
    if any(o.name.startswith("obj_") for o in outputs):
        return "face detector (YuNet, MIT; FRAMEWISE_FACE_DETECTOR=yunet)"
    if len(outputs) >= 5:
        return "face detector (SCRFD)"
    if side == 96:
        return "face gender/age"
    if isinstance(side, int) and side >= 112 and side % 16 == 0 and shape[2] == shape[3]:
        return "face recognition (ArcFace)" if outputs[0].shape[-1] == 512 else f"image {side}px"
    return f"input {shape}"


def list_models(settings: Settings) -> list[str]:
    root = settings.models_dir
    lines = [f"models dir: {root}"]
    if not root.is_dir():
        return [*lines, "  (missing)"]
    for path in sorted(root.rglob("*.onnx")):
        size = path.stat().st_size / 2**20
        lines.append(
            f"  {path.relative_to(root)}  {size:6.1f} MiB  {sha256_of(path)[:16]}…  "
            f"{describe(path)}"
        )
    return lines


def fetch_pack(name: str, sha256: str, target: Path, url: str | None = None) -> Path:
    """Download a zipped pack, verify its sha256, unpack its ``.onnx`` files into ``target``."""
    import httpx

    url = url or PACK_URLS.get(name)
    if url is None:
        raise SystemExit(f"unknown pack {name!r}; give --url (known: {', '.join(PACK_URLS)})")
    with tempfile.NamedTemporaryFile(suffix=".zip") as tmp:
        digest = hashlib.sha256()
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                tmp.write(chunk)
        tmp.flush()
        if digest.hexdigest() != sha256.lower():
            raise SystemExit(f"checksum mismatch for {url}: got {digest.hexdigest()}")
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp.name) as archive:
            for member in archive.infolist():
                if member.filename.endswith(".onnx"):
                    (target / Path(member.filename).name).write_bytes(archive.read(member))
    return target
