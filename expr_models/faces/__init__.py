"""Faces in photos: geometry, detection, alignment, the crop -> tensor path and live tracking.

- :mod:`.geometry`: ``FaceBox``, ``CropTransform``, the crop framing, the blend mask, the one face resize;
- :mod:`.detection`: the detectors (RetinaFace, Haar) by name, and ``detect_faces``;
- :mod:`.alignment`: the five-point aligned frame the warp generators and the average edit work in;
- :mod:`.processing`: ``FaceImageProcessor``, the one way from a face to a tensor and back (crop, paste);
- :mod:`.live`: ``LiveTracker``, webcam frames through the editor.
"""
