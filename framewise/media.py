"""Media probing and streaming decode with PyAV: frames are yielded one at a time, never a
whole video in memory, already scaled to each sampling profile's size."""

from __future__ import annotations

import io
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from schemas.api import ErrorCode
from schemas.messages import VideoProbe

os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(8192 * 8192))
import cv2


def set_opencv_threads(threads: int) -> int:
    """OpenCV's thread pool for this process (``FRAMEWISE_OPENCV_THREADS``; 0: OpenCV's
    default, a thread per core); returns the number it had before."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(threads or -1)
    return before


class MediaError(Exception):
    """Media that cannot be analysed; ``code`` is the job error code reported to the user."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def without_path(exc: Exception) -> str:
    """An FFmpeg error's reason without the file name FFmpeg puts in it (a server path is
    nobody's business)."""
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    return str(exc)


def probe_video(path: Path, max_pixels: int) -> VideoProbe:
    """Open the container and decode its first frame; raise :class:`MediaError` if we can't."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(
            ErrorCode.unsupported_media, f"not a readable video container: {without_path(exc)}"
        ) from exc
    with container:
        if not container.streams.video:
            raise MediaError(ErrorCode.unsupported_media, "the file has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if ctx.width * ctx.height > max_pixels:
            raise MediaError(
                ErrorCode.unsupported_media,
                f"frame size {ctx.width}x{ctx.height} exceeds the limit of {max_pixels} pixels",
            )
        try:
            first = next(container.decode(stream))
        except StopIteration:
            raise MediaError(
                ErrorCode.corrupt_media, "the video stream has no decodable frame"
            ) from None
        except av.error.FFmpegError as exc:
            raise MediaError(
                ErrorCode.corrupt_media, f"the first frame does not decode: {without_path(exc)}"
            ) from exc
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        return VideoProbe(
            duration_seconds=max(duration, (first.time or 0.0) - start),
            fps=fps,
            width=first.height if quarter_turns(first) % 2 else first.width,
            height=first.width if quarter_turns(first) % 2 else first.height,
            frame_count=stream.frames or None,
        )


@dataclass(frozen=True)
class TimelineScan:
    """What a video's packets say of its timeline, read without decoding."""

    slots: list[int]  # the occupied ``segment_seconds`` slots, in order
    packets: int  # frames held
    keyframes: list[float]  # seconds from the start, in order
    last_in_slot: dict[int, float]  # the latest frame of each occupied slot
    packets_before_keyframe: list[int]  # frames read before each of ``keyframes``
    packets_before_slot: dict[int, int]  # frames read before each occupied slot's first

    def frames_in_slot(self, position: int) -> int:
        """Frames held by the ``position``-th occupied slot."""
        following = self.slots[position + 1] if position + 1 < len(self.slots) else None
        end = self.packets if following is None else self.packets_before_slot[following]
        return max(0, end - self.packets_before_slot[self.slots[position]])


def scan_timeline(
    path: Path, segment_seconds: float, deadline: float | None = None
) -> TimelineScan:
    """The ``segment_seconds`` slots of the timeline that hold at least one frame, the number
    of frames and where the key frames are, from the packets alone (no decoding).

    A plan built from these costs what the media really holds: two frames a day apart make one
    segment, not 1,441 (the timestamps a container claims cost nothing to fake). Raises
    :class:`MediaError` when ``deadline`` (epoch seconds) passes while reading.
    """
    last_in_slot: dict[int, float] = {}
    packets_before_slot: dict[int, int] = {}
    keyframes: list[tuple[float, int]] = []
    packets = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start_pts = stream.start_time or 0
        for packet in container.demux(stream):
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.size == 0:
                continue
            t = max(0.0, float((stamp - start_pts) * stream.time_base))
            slot = int(t // segment_seconds)
            last_in_slot[slot] = max(t, last_in_slot.get(slot, t))
            packets_before_slot.setdefault(slot, packets)
            if packet.is_keyframe:
                keyframes.append((t, packets))
            packets += 1
            if deadline is not None and packets % 4096 == 0 and time.time() > deadline:
                raise PlanningTimeout("Max-Processing-Time passed while reading the video")
    keyframes.sort()
    return TimelineScan(
        slots=sorted(last_in_slot),
        packets=packets,
        keyframes=[t for t, _ in keyframes],
        last_in_slot=last_in_slot,
        packets_before_keyframe=[before for _, before in keyframes],
        packets_before_slot=packets_before_slot,
    )


class PlanningTimeout(MediaError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.processing_timeout, message)


def quarter_turns(frame: av.VideoFrame) -> int:
    """How many quarter turns counterclockwise show the frame as it is meant to be seen: its
    display matrix (a phone video stored sideways) says so, as FFmpeg's own players read it."""
    return round((frame.rotation or 0) / 90) % 4


def upright(image: np.ndarray, turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    """One plane of ``frame`` as a view (no copy), without the row padding."""
    plane = frame.planes[index]
    return np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, :width]


def shrink(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``plane`` scaled down to ``size`` (width, height) with the area filter. Halvings first:
    OpenCV averages 2x2 blocks about 10x faster than it area-filters by any other factor, so
    1280x720 to 160x90 takes 0.05 ms instead of 0.23, and to 128x72 0.08 ms."""
    width, height = size
    while plane.shape[1] >= 2 * width and plane.shape[0] >= 2 * height:
        odd_h, odd_w = plane.shape[0] % 2, plane.shape[1] % 2
        if odd_h or odd_w:  # repeat the last row or column: the fast path needs even sides
            plane = cv2.copyMakeBorder(plane, 0, odd_h, 0, odd_w, cv2.BORDER_REPLICATE)
        half = (plane.shape[1] // 2, plane.shape[0] // 2)
        plane = cv2.resize(plane, half, interpolation=cv2.INTER_AREA)
    if plane.shape[::-1] == size:
        return plane
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


def to_rgb(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """``frame`` as RGB at ``size``. Video-range 4:2:0 frames (nearly every video) are scaled
    plane by plane (:func:`shrink`) and converted to RGB at the small size: several times
    faster than swscale, with the same BT.601 colours. Other frames go through swscale."""
    width, height = size
    full_range = frame.color_range == 2  # OpenCV's conversion assumes the video range
    if frame.format.name != "yuv420p" or full_range or width % 2 or height % 2:
        return frame.to_ndarray(format="rgb24", width=width, height=height)
    half = ((frame.width + 1) // 2, (frame.height + 1) // 2)
    planes = [
        _plane(frame, 0, frame.width, frame.height),
        _plane(frame, 1, *half),
        _plane(frame, 2, *half),
    ]
    sizes = [size, (width // 2, height // 2), (width // 2, height // 2)]
    scaled = [shrink(p, s) for p, s in zip(planes, sizes, strict=True)]
    i420 = np.concatenate([p.reshape(-1) for p in scaled]).reshape(height * 3 // 2, width)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def scaled_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Size that fits ``max_side`` keeping the aspect ratio, even for the scaler, never upscaled."""
    scale = min(1.0, max_side / max(width, height))
    w = max(2, round(width * scale / 2) * 2)
    h = max(2, round(height * scale / 2) * 2)
    return w, h


def analysed_rate(profile_fps: float, native_fps: float) -> float:
    """Frames per second a profile yields from a video of ``native_fps`` (0: every frame)."""
    return profile_fps if 0 < profile_fps < native_fps else native_fps


@dataclass(frozen=True)
class Profile:
    """A sampling profile: which frames a group of stages sees, at what size, in what batches."""

    name: str
    fps: float  # 0: every frame
    max_side: int
    batch_frames: int
    context_seconds: float = 0.0  # frames before each batch that ride along for temporal diffs


@dataclass
class PendingBatch:
    frames: list[np.ndarray] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


@dataclass
class DecodedBatch:
    profile: str
    batch_index: int
    images: list[np.ndarray]  # (h, w, 3) uint8 RGB each, context frames first
    context_frames: int
    frame_indices: list[int]
    timestamps: list[float]
    rate: float  # frames per second this profile yields (0 for a still image)

    @cached_property
    def frames(self) -> np.ndarray:
        """The images as one (n, h, w, 3) array, for a stage analysing them in-process. The
        decode worker stores them one JPEG at a time, so it never stacks them: a copy of every
        pixel, 5% of its CPU."""
        return np.stack(self.images)


class ProfileSampler:
    """Picks a profile's frames on a global time grid, so segments decoded by different workers
    pick exactly the frames one worker decoding the whole video would."""

    def __init__(self, profile: Profile, native_fps: float, start_s: float) -> None:
        self.profile = profile
        self.rate = analysed_rate(profile.fps, native_fps)
        self.context_len = math.ceil(profile.context_seconds * self.rate)
        self.every_frame = self.rate >= native_fps
        self.next_slot = math.ceil(start_s * self.rate - 1e-6)
        self.history: deque[tuple[int, float, np.ndarray]] = deque(maxlen=self.context_len)
        self.pending = PendingBatch()
        self.batch_index = 0
        self.context_for_pending: list[tuple[int, float, np.ndarray]] = []

    def wants(self, t: float) -> bool:
        return self.every_frame or t * self.rate + 1e-6 >= self.next_slot

    def remember_before_start(self, index: int, t: float, image: np.ndarray) -> None:
        """Frames just before the segment feed the first batch's context only."""
        if self.context_len:
            self.history.append((index, t, image))

    def add(self, index: int, t: float, image: np.ndarray) -> DecodedBatch | None:
        if not self.every_frame:
            self.next_slot = math.floor(t * self.rate + 1e-6) + 1
        if not self.pending.frames:
            self.context_for_pending = list(self.history)
        self.pending.frames.append(image)
        self.pending.indices.append(index)
        self.pending.times.append(round(t, 6))
        if self.context_len:
            self.history.append((index, t, image))
        if len(self.pending.frames) >= self.profile.batch_frames:
            return self.flush()
        return None

    def flush(self) -> DecodedBatch | None:
        if not self.pending.frames:
            return None
        context = self.context_for_pending
        frames = [c[2] for c in context] + self.pending.frames
        batch = DecodedBatch(
            profile=self.profile.name,
            batch_index=self.batch_index,
            images=frames,
            context_frames=len(context),
            frame_indices=[c[0] for c in context] + self.pending.indices,
            timestamps=[round(c[1], 6) for c in context] + self.pending.times,
            rate=self.rate,
        )
        self.batch_index += 1
        self.pending = PendingBatch()
        return batch


SMALL_PROFILE_SIDE = 320  # frames scaled to this or less, from 4x or more, for the option below


def deblocking_optional(profiles: list[Profile], width: int, height: int) -> bool:
    """Whether every profile scales frames down 4x or more, to at most ``SMALL_PROFILE_SIDE``.
    Then the decoder skips the loop filter on frames no other frame refers to (H.264's
    ``skip_loop_filter=noref``): about 10% less CPU per frame, and no error carried into later
    frames; at 128 px the frames differ from filtered ones by 0.006 levels on average and 4 at
    most (``tests/test_media_scaling.py``). Detail frames keep the filter."""
    largest = max((p.max_side for p in profiles), default=0)
    return 0 < largest <= SMALL_PROFILE_SIDE and max(width, height) >= 4 * largest


def frames_after_lead_in(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    lead_in_end: float | None,
) -> Iterator[av.VideoFrame]:
    """``stream``'s frames from where ``container`` was sought to. Up to ``lead_in_end`` (the
    stream's own seconds; None: no lead-in) the decoder skips the frames no other frame refers
    to (``skip_frame=NONREF``): a segment that starts between key frames decodes the frames
    before its start only as references, 1.7-2.2x cheaper on testvideo.mp4's B-frames. Each
    frame from ``lead_in_end`` on decodes as it would without the lead-in."""
    context = stream.codec_context
    end_pts = None if lead_in_end is None else lead_in_end / stream.time_base
    if end_pts is not None:
        context.skip_frame = "NONREF"
    for packet in container.demux(stream):
        if end_pts is not None and (packet.pts is None or packet.pts >= end_pts):
            context.skip_frame = "DEFAULT"  # a frame to keep may be in this packet
            end_pts = None
        yield from packet.decode()


def decode_video_segment(
    path: Path,
    profiles: list[Profile],
    start_s: float,
    end_s: float | None,
    max_pixels: int,
    threads: int = 0,
) -> Iterator[DecodedBatch]:
    """Decode ``[start_s, end_s)`` of a video and yield each profile's batches as they fill,
    with ``threads`` FFmpeg threads (0: FFmpeg's choice).

    Seeks to the key frame before the segment (minus the longest context), so memory is one
    batch per profile whatever the video's length. Raises :class:`MediaError` on a decode error.
    """
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise MediaError(
            ErrorCode.unsupported_media, f"cannot open the video: {without_path(exc)}"
        ) from exc
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if deblocking_optional(profiles, stream.codec_context.width, stream.codec_context.height):
            stream.codec_context.options = {"skip_loop_filter": "noref"}
        native_fps = float(stream.average_rate or stream.guessed_rate or 25.0)
        start_pts = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
        samplers = [ProfileSampler(p, native_fps, start_s) for p in profiles]
        longest_context = max((s.context_len / s.rate for s in samplers), default=0.0)
        seek_to = start_s - longest_context - 1.0 / native_fps
        if seek_to > 0:
            container.seek(int((seek_to + start_pts) / stream.time_base), stream=stream)
        sizes: dict[int, tuple[int, int]] = {}
        lead_in_end = seek_to + start_pts if seek_to > 0 else None
        try:
            for frame in frames_after_lead_in(container, stream, lead_in_end):
                if frame.width * frame.height > max_pixels:
                    raise MediaError(ErrorCode.unsupported_media, "frame exceeds the pixel limit")
                t = (frame.time or 0.0) - start_pts
                if end_s is not None and t >= end_s - 1e-6:
                    break
                index = round(t * native_fps)
                before_start = t < start_s - 1e-6
                for sampler in samplers:
                    if before_start and not sampler.context_len:
                        continue
                    if not before_start and not sampler.wants(t):
                        continue
                    size = sizes.setdefault(
                        sampler.profile.max_side,
                        scaled_size(frame.width, frame.height, sampler.profile.max_side),
                    )
                    image = upright(
                        to_rgb(frame, size),
                        quarter_turns(frame),
                    )
                    if before_start:
                        sampler.remember_before_start(index, t, image)
                    elif (batch := sampler.add(index, t, image)) is not None:
                        yield batch
        except av.error.FFmpegError as exc:
            raise MediaError(
                ErrorCode.corrupt_media, f"decoding failed: {without_path(exc)}"
            ) from exc
        for sampler in samplers:
            if (batch := sampler.flush()) is not None:
                yield batch


@dataclass(frozen=True)
class ImageHeader:
    size: tuple[int, int]  # (width, height)
    transparent: bool  # an alpha channel or a transparent palette colour


def image_header(data: bytes) -> ImageHeader | None:
    """What an image's header says (Pillow reads no pixels for it), or ``None`` where Pillow
    does not know the format."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            alpha = image.mode in ("RGBA", "RGBa", "LA", "La", "PA")
            return ImageHeader(image.size, alpha or "transparency" in image.info)
    except Image.DecompressionBombError:
        return ImageHeader((1 << 20, 1 << 20), False)  # far beyond any limit
    except Exception:
        return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an image to RGB, upright by its EXIF orientation; raise :class:`MediaError` for
    anything that is not one."""
    if not data:
        raise MediaError(ErrorCode.unsupported_media, "the image is empty")
    array = np.frombuffer(data, dtype=np.uint8)
    # The size comes from the header, so a decompression bomb is refused before any decode;
    # a format Pillow does not know is read reduced 8x first. OpenCV itself also refuses
    # anything above OPENCV_IO_MAX_IMAGE_PIXELS.
    header = image_header(data)
    if header is None:
        reduced = _imdecode(
            array, cv2.IMREAD_REDUCED_GRAYSCALE_8, ErrorCode.unsupported_media, unreadable(data)
        )
        header = ImageHeader((reduced.shape[1] * 8, reduced.shape[0] * 8), False)
    width, height = header.size
    if width * height > max_pixels:
        raise MediaError(
            ErrorCode.unsupported_media,
            f"the image's {width}x{height} pixels exceed the limit of {max_pixels}",
        )
    if header.transparent:
        return on_background(_decode_rgba(data))
    image = _imdecode(array, cv2.IMREAD_COLOR, ErrorCode.corrupt_media, "corrupt image data")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


READABLE = "JPEG, PNG, WebP, AVIF, GIF, BMP or TIFF"
HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def unreadable(data: bytes) -> str:
    """Why bytes that no decoder reads are refused, naming what is read instead."""
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:  # a phone's default photo format
        return f"HEIC/HEIF images are not supported: convert it to {READABLE}"
    return f"not an image in a format the service reads ({READABLE})"


def _decode_rgba(data: bytes) -> np.ndarray:
    """An image with transparency as upright RGBA, through Pillow (OpenCV reads the alpha
    channel only without the EXIF orientation, and no transparent palette colour)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGBA"))
    except Exception as exc:  # Pillow's ways of failing on broken data are many
        raise MediaError(ErrorCode.corrupt_media, "corrupt image data") from exc


BACKGROUND_ROWS = 512  # rows at once: a large image needs no full-size temporaries


def on_background(rgba: np.ndarray) -> np.ndarray:
    """The RGB picture of an image with transparency, as a viewer shows it: over white where
    what is visible is dark (black text or a logo on a transparent PNG), over black where it
    is light. The colour a transparent pixel holds is arbitrary, most often black, so
    dropping the alpha channel made black text on a transparent PNG vanish."""
    starts = range(0, len(rgba), BACKGROUND_ROWS)
    brightness = visible = 0
    for top in starts:
        part = rgba[top : top + BACKGROUND_ROWS]
        grey = cv2.cvtColor(np.ascontiguousarray(part[..., :3]), cv2.COLOR_RGB2GRAY)
        shown = part[..., 3] >= 128
        brightness += int(grey[shown].sum())
        visible += int(shown.sum())
    background = 0 if visible and brightness >= 128 * visible else 255  # light: black
    out = np.empty((*rgba.shape[:2], 3), np.uint8)
    for top in starts:
        part = rgba[top : top + BACKGROUND_ROWS].astype(np.uint16)
        weight = part[..., 3:]  # colour * alpha + background * (255 - alpha) fits 16 bits
        blended = part[..., :3] * weight + background * (255 - weight) + 127
        out[top : top + len(part)] = blended // 255
    return out


def _imdecode(array: np.ndarray, flags: int, code: ErrorCode, message: str) -> np.ndarray:
    """OpenCV's decode, with its two ways of failing (an error, or ``None``) as one."""
    try:
        image = cv2.imdecode(array, flags)
    except cv2.error as exc:
        raise MediaError(code, message) from exc
    if image is None:
        raise MediaError(code, message)
    return image


def resize_to(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    nw, nh = scaled_size(w, h, max_side)
    if (nw, nh) == (w, h):
        return image
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
