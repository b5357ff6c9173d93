"""Live mode: edit a stream of webcam frames, keeping each face's detection while it stays put.

Between two webcam frames a face barely moves, so detecting it again on every frame wastes time a frame does not
have. The tracker keeps the last boxes and compares a small grey thumbnail of each face region with the one taken
when it was detected; it detects again when a face region changed (the face moved, turned or left), when the frame
size changed, when no face was found last time, or every ``redetect_every`` frames in any case (a new face may have
come in). Between detections each box also carries the square the last frame's face mesh puts the face in
(``FaceBox.mesh_roi``), as MediaPipe tracks a face from frame to frame: the mesh is then read once per frame
instead of twice (from the landmarks, then around that first mesh). Frames carry no classifier readings
(``edit(..., read_expressions=False)``).

    tracker = LiveTracker(editor)
    for frame in frames:  # H x W x 3 uint8 RGB
        edited = tracker.edit(frame, method="cyclegan", target="happy").pixels
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from PIL import Image

from ..pipeline import Detection, ExpressionEditor
from .geometry import FaceBox
from .mesh import roi_from_points

THUMBNAIL_SIDE = 24  # pixels per side of the grey face thumbnails compared between frames


@dataclass
class LiveFrame:
    """One edited frame: its pixels, whether detection ran for it, how many faces were edited, timings (seconds)."""

    pixels: np.ndarray
    detected: bool
    faces: int
    timings: dict[str, float] = field(default_factory=dict)


def face_thumbnails(frame: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
    """``len(boxes) x THUMBNAIL_SIDE x THUMBNAIL_SIDE`` float32 grey thumbnails of the face regions (clipped to the
    frame; a region wholly outside it is a black thumbnail)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    thumbnails = np.zeros((len(boxes), THUMBNAIL_SIDE, THUMBNAIL_SIDE), np.float32)
    for index, box in enumerate(boxes):
        x0, y0 = min(max(0, int(box.x0)), width - 1), min(max(0, int(box.y0)), height - 1)
        x1, y1 = min(width, int(np.ceil(box.x1))), min(height, int(np.ceil(box.y1)))
        region = grey[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        thumbnails[index] = cv2.resize(region, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
    return thumbnails


def as_rgb_frame(frame: np.ndarray) -> np.ndarray:
    """A webcam frame as contiguous H x W x 3 uint8 (grey frames are repeated, an alpha channel dropped)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=-1)
    if frame.ndim != 3 or frame.shape[-1] < 3:
        raise ValueError(f"a frame must be H x W x 3 (or 4, or grey H x W), not {frame.shape}")
    return np.ascontiguousarray(frame[..., :3], dtype=np.uint8)


class LiveTracker:
    """Edits one viewer's frames one after another. Several threads may call :meth:`edit`; the tracking state is
    updated under a lock, the edits themselves run unlocked on the shared editor.

    ``motion_threshold``: mean absolute grey-level change (0-255) of a face thumbnail since its detection above which
    the face counts as moved. Webcam noise averages out over a thumbnail's pixels (well under 2 levels); a head
    turn or a step aside changes it by tens. ``redetect_every``: detect at least this often, in frames.
    """

    def __init__(self, editor: ExpressionEditor, motion_threshold: float = 8.0, redetect_every: int = 30):
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be at least 1, not {redetect_every}")
        self.editor = editor
        self.motion_threshold = motion_threshold
        self.redetect_every = redetect_every
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the faces: the next frame is detected afresh."""
        with self._lock:
            self._boxes: list[FaceBox] = []
            self._thumbnails = np.zeros((0, THUMBNAIL_SIDE, THUMBNAIL_SIDE), np.float32)
            self._size: tuple[int, int] | None = None
            self._since_detection = 0
            self._detection_number = 0  # which detection the boxes come from
        self.frames = 0
        self.detections = 0

    def needs_detection(self, frame: np.ndarray) -> bool:
        if self._size != frame.shape[:2] or not self._boxes or self._since_detection >= self.redetect_every:
            return True
        change = np.abs(face_thumbnails(frame, self._boxes) - self._thumbnails).mean(axis=(1, 2))
        return bool(change.max() > self.motion_threshold)

    def _boxes_for(self, frame: np.ndarray) -> tuple[list[FaceBox], bool, int]:
        with self._lock:
            detected = self.needs_detection(frame)
            if detected:
                self._boxes = self.editor.detect_faces(frame)
                self._thumbnails = face_thumbnails(frame, self._boxes)
                self._size = frame.shape[:2]
                self._since_detection = 0
                self._detection_number += 1
                self.detections += 1
            self._since_detection += 1
            self.frames += 1
            return list(self._boxes), detected, self._detection_number

    def _track_meshes(self, boxes: list[FaceBox], faces: list, detection_number: int) -> None:
        """Give each box the square its face's mesh, read on this frame, places it in for the next frame; a mesh
        whose square's centre left the box (a face lost) is not followed. Boxes detected since are left alone."""
        with self._lock:
            if detection_number != self._detection_number:
                return
            index_of = {id(box): index for index, box in enumerate(boxes)}
            for face in faces:
                index = index_of.get(id(face.box))
                if index is None:
                    continue
                box, roi = self._boxes[index], None
                if face.mesh is not None:  # a method that reads no mesh leaves none to follow
                    roi = roi_from_points(face.mesh)
                    x, y = roi[0]
                    roi = roi if box.x0 <= x < box.x1 and box.y0 <= y < box.y1 else None
                self._boxes[index] = replace(box, mesh_roi=roi)

    def edit(self, frame: np.ndarray, method: str = "cyclegan", target: str | None = "happy",
             intensity: float = 1.0, **controls) -> LiveFrame:
        """The edited frame; a frame with no face comes back unchanged (``faces == 0``). ``controls``: the method's
        own options, as for ``ExpressionEditor.edit``."""
        frame = as_rgb_frame(frame)
        start = time.perf_counter()
        boxes, detected, detection_number = self._boxes_for(frame)
        timings = {"detect" if detected else "track": time.perf_counter() - start}
        if not boxes:
            return LiveFrame(frame, detected, 0, timings)
        # A Detection made here: no decoding, and the editor keeps the max_faces largest as for a photo.
        detection = Detection(Image.fromarray(frame), frame, boxes)
        result = self.editor.edit(detection, method=method, target=target, intensity=intensity,
                                  read_expressions=False, **controls)
        self._track_meshes(boxes, result.faces, detection_number)
        timings["edit"] = result.timings.get("edit", 0.0)
        return LiveFrame(np.asarray(result.image), detected, len(result.faces), timings)
