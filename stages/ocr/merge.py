"""Turning per-frame OCR lines into results (pure).

* **Blocks**: lines that belong together are joined in reading order. Two lines join when they
  sit on one row with a gap under one line height (joined by a space), or are stacked with a
  gap under 0.8 line heights and overlap horizontally (joined by a newline).
* **Tracks** (video): a line continues a track when it overlaps the track's last box
  (IoU ≥ 0.3), reads alike (similarity ≥ 0.7, so small recognition variations do not split
  it), and the track was seen within ``max_gap`` seconds. A track's text is its most frequent
  reading; it spans from its first to its last sighting plus one sampling interval. Tracks
  that co-occur and form a block become one result.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher

from stages.ocr.engine import OcrLine
from stages.ocr.language import block_language

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a.casefold(), b.casefold()).ratio()


def _same_row(a: Box, b: Box) -> bool:
    height = min(a[3] - a[1], b[3] - b[1])
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return overlap >= 0.5 * height and gap <= 1.0 * height


def _stacked(a: Box, b: Box) -> bool:
    ha, hb = a[3] - a[1], b[3] - b[1]
    if max(ha, hb) > 1.5 * min(ha, hb):
        return False
    gap = max(a[1], b[1]) - min(a[3], b[3])
    horizontal = min(a[2], b[2]) - max(a[0], b[0])
    return 0 - 0.3 * min(ha, hb) <= gap <= 0.8 * min(ha, hb) and horizontal > 0


def _adjacent(a: Box, b: Box) -> bool:
    return _same_row(a, b) or _stacked(a, b)


def _components(n: int, connected) -> list[list[int]]:
    """Connected components of ``range(n)`` under ``connected(i, j)`` (union-find)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if connected(i, j):
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def group_blocks(boxes: list[Box]) -> list[list[int]]:
    """Indices of lines that form one block, blocks and lines in reading order."""
    groups = _components(len(boxes), lambda i, j: _adjacent(boxes[i], boxes[j]))
    blocks = [_reading_order(g, boxes) for g in groups]
    return sorted(blocks, key=lambda g: (min(boxes[i][1] for i in g), min(boxes[i][0] for i in g)))


def _reading_order(members: list[int], boxes: list[Box]) -> list[int]:
    """Rows top to bottom (a line joins a row when its centre lies within the row's first
    line), each row left to right."""
    rows: list[list[int]] = []
    for i in sorted(members, key=lambda i: (boxes[i][1] + boxes[i][3]) / 2):
        centre = (boxes[i][1] + boxes[i][3]) / 2
        if rows and boxes[rows[-1][0]][1] <= centre <= boxes[rows[-1][0]][3]:
            rows[-1].append(i)
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i][0])]


def join_block(texts: list[str], boxes: list[Box]) -> str:
    out = texts[0]
    for k in range(1, len(texts)):
        out += (" " if _same_row(boxes[k - 1], boxes[k]) else "\n") + texts[k]
    return out


@dataclass
class Track:
    box: Box
    first: float
    last: float
    readings: Counter = field(default_factory=Counter)
    scores: dict[str, float] = field(default_factory=dict)
    languages: dict[str, str | None] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return max(self.readings, key=lambda t: (self.readings[t], self.scores.get(t, 0.0)))

    def add(self, line: OcrLine, t: float) -> None:
        self.readings[line.text] += 1
        self.scores[line.text] = self.scores.get(line.text, 0.0) + line.score
        self.languages[line.text] = line.language
        self.box = line.box
        self.last = t


def track_lines(frames: list[tuple[float, list[OcrLine]]], max_gap: float) -> list[Track]:
    tracks: list[Track] = []
    for t, lines in sorted(frames, key=lambda f: f[0]):
        claimed: set[int] = set()
        for line in lines:
            best, best_score = None, 0.0
            for k, track in enumerate(tracks):
                if k in claimed or t - track.last > max_gap or iou(track.box, line.box) < 0.3:
                    continue
                score = similarity(track.text, line.text)
                if score >= 0.7 and score > best_score:
                    best, best_score = k, score
            if best is None:
                tracks.append(Track(line.box, t, t))
                best = len(tracks) - 1
            tracks[best].add(line, t)
            claimed.add(best)
    return tracks


def video_results(
    tracks: list[Track], interval: float, duration: float
) -> list[tuple[str, float, float, str]]:
    """``(full_text, start, end, language)`` per block of co-occurring tracks."""
    spans = [(tr.first, min(duration, tr.last + interval)) for tr in tracks]

    def together(i: int, j: int) -> bool:
        (a0, a1), (b0, b1) = spans[i], spans[j]
        overlap = min(a1, b1) - max(a0, b0)
        return overlap > 0.5 * min(a1 - a0, b1 - b0) and _adjacent(tracks[i].box, tracks[j].box)

    results = []
    for members in _components(len(tracks), together):
        boxes = [tracks[i].box for i in members]
        order = [members[i] for block in group_blocks(boxes) for i in block]
        texts = [tracks[i].text for i in order]
        text = join_block(texts, [tracks[i].box for i in order])
        language = block_language(texts, [tracks[i].languages.get(tracks[i].text) for i in order])
        start = min(spans[i][0] for i in members)
        end = max(spans[i][1] for i in members)
        results.append((text, start, end, language))
    return sorted(results, key=lambda r: (r[1], r[0]))
