"""Running the stages in one process, without Kafka: decode a video, call every enabled
stage's analyzer on its batches, assemble the result as the aggregator would. The tests and
``bench/`` use it to check and measure the stages' own code."""

from __future__ import annotations

from framewise.config import Settings
from framewise.media import DecodedBatch, decode_video_segment, probe_video
from schemas.api import VideoResult
from schemas.messages import DecodeTask, FrameBatch, JobState
from stages.aggregator.assembly import stored_payload, video_result
from stages.decode.segment import batch_message
from stages.profiles import profiles
from stages.registry import active_stages, stages
from stages.spec import BatchAnalyzer, VideoContext


def run_video_stages(path, settings: Settings) -> VideoResult:
    """decode -> every enabled stage's analyzer -> the aggregator's assembly, in process."""
    names = active_stages(settings)
    specs = [stages()[name] for name in names]
    analyzers = {spec.name: spec.make_analyzer(settings) for spec in specs}
    selected = [profiles(settings)[p] for p in {spec.profile for spec in specs}]
    payloads: dict[str, list] = {spec.name: [] for spec in specs}
    probe = probe_video(path, settings.max_pixels)
    for batch in decode_video_segment(path, selected, 0.0, None, 1 << 30):
        message = frame_message(batch, names)
        for spec in specs:
            if spec.profile == batch.profile:
                payload = analyzers[spec.name].analyze(batch.frames, message)
                payloads[spec.name].append((0, batch.batch_index, stored_payload(payload)))
    state = JobState(
        job_id="video_x",
        media_type="video",
        stages=names,
        probe=probe,
        submitted_at="2026-01-01T00:00:00Z",
    )
    return video_result(state, payloads, settings)


def image_frame_batch(stage: str) -> FrameBatch:
    """The FrameBatch decode publishes for one image of a batch (one frame, no timing)."""
    return FrameBatch(
        job_id="image_batch_test",
        media_type="image",
        profile="detail",
        segment_index=0,
        batch_index=0,
        blob_key="-",
        frame_indices=[0],
        timestamps=[0.0],
        fps=0.0,
        stages=[stage],
    )


def frame_message(batch: DecodedBatch, stage_names: list[str]) -> FrameBatch:
    """The FrameBatch decode would publish for a video batch (blob key unused in process)."""
    task = DecodeTask(
        job_id="video_test",
        media_type="video",
        blob_key="-",
        stages=stage_names,
        profiles=[batch.profile],
        segment_index=0,
    )
    return batch_message(task, batch, "-")


def stage_context(path, name: str, analyzer: BatchAnalyzer, settings: Settings) -> VideoContext:
    """``analyzer`` (stage ``name``'s) over every batch of the stage's profile, in process:
    the context that stage's video finaliser reads."""
    profile = profiles(settings)[stages()[name].profile]
    payloads, rate = [], 0.0
    for batch in decode_video_segment(path, [profile], 0.0, None, 1 << 30):
        payloads.append(analyzer.analyze(batch.frames, frame_message(batch, [name])))
        rate = batch.rate
    return VideoContext(probe_video(path, settings.max_pixels), rate, payloads)
