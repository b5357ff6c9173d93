"""Training face crops: where a source image becomes the grayscale square a model trains on.

:func:`crop_training_face` is the one crop -> resize path of the recipes. :class:`FaceCropper` (photos: detect,
then crop) and :func:`resized_faces` (sources that are already face crops) adapt it to the builders' ``ImageProcess``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image as PILImage

from .records import BuildReport, ExpressionRecord, ImageProcess

if TYPE_CHECKING:
    from ..faces.geometry import FaceBox


def _centre_square(image: PILImage.Image) -> PILImage.Image:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def crop_training_face(image: PILImage.Image, size: int, box: FaceBox | None = None) -> tuple[PILImage.Image, bool]:
    """The ``size x size`` grayscale training crop of a face, and whether it was enlarged to reach ``size``.

    Cut and resampled by the editor's own :class:`~expr_models.faces.processing.FaceImageProcessor`, so a model sees the
    same pixels in training and in use. With a detector ``box`` the crop has the editor's framing (the box's square
    scaled by ``CROP_SCALE``), made from the RGB image and converted to grayscale after. Without a box (a source that
    is already a face crop, or a photo where no face was found) the grayscale image's centre square is resized.
    """
    from ..faces.processing import FaceImageProcessor  # OpenCV is only needed when cropping

    processor = FaceImageProcessor()
    if box is not None:
        crop, transform = processor.crop(np.asarray(image.convert("RGB")), box, size)
        return PILImage.fromarray(crop).convert("L"), transform.side < size
    square = np.asarray(_centre_square(image.convert("L")))
    return PILImage.fromarray(processor.resize(square, size)), square.shape[0] < size


class FaceCropper:
    """Aligned grayscale face crops with the editor's own framing (``expr_models.faces.geometry``).

    The boxes come from the Haar cascade (``HaarFaceDetector``), not the editor's default detector: every committed
    model was trained on Haar-framed crops, and the editor maps RetinaFace's boxes to that framing. If no face is found
    the centre square is used instead, and counted in the report.
    """

    def __init__(self, size: int, report: BuildReport):
        from ..faces import detection  # OpenCV is only needed when cropping

        self.detection = detection
        self.detector = detection.HaarFaceDetector()
        self.size = size
        self.report = report

    def __call__(self, record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        boxes = self.detection.detect_faces(np.asarray(image.convert("RGB")), detector=self.detector)
        if not boxes:
            self.report.note("no face found, centre square used", f"{record.source}/{record.name}")
        crop, upscaled = crop_training_face(image, self.size, boxes[0] if boxes else None)
        return crop, {"upscaled": upscaled}


def resized_faces(size: int) -> ImageProcess:
    """For sources that are already face crops (FER2013, CK+): the centre square at ``size``, enlargements marked."""

    def resize(record: ExpressionRecord, image: PILImage.Image) -> tuple[PILImage.Image, dict]:
        crop, upscaled = crop_training_face(image, size)
        return crop, {"upscaled": upscaled}

    return resize
