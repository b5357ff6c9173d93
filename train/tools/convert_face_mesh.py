"""Write checkpoints/face_mesh/ (MediaPipe Face Mesh's landmark network in PyTorch) from the mediapipe 0.10.21 wheel.

    pip download mediapipe==0.10.21 --no-deps -d /tmp/mp      # the wheel only; mediapipe is never installed
    pip install ai-edge-litert                                 # reads the .tflite here; not needed at run time
    python -m train.tools.convert_face_mesh --wheel /tmp/mp/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl

``mediapipe/modules/face_landmark/face_landmark.tflite`` is read from the wheel as a zip (no code of the package
runs). Its constant tensors (float16, dequantised by the graph) are copied into ``FaceMeshModel`` by name, each once;
a tensor left over or a parameter left unfilled stops the conversion. Then both networks run on real faces (the
astronaut of scikit-image and matplotlib's Grace Hopper, plus London Set photos with ``--london``), crops cut by
``expr_models.faces.mesh``, and the point differences in crop pixels are printed and written to the card. The weights
are stored in float16, as in the .tflite (so nothing is rounded); they load as float32. The wheel's Apache-2.0 text is
written beside them as LICENSE.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch

from expr_models.models.face_mesh import FaceMeshConfig, FaceMeshModel

MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
LICENSE_MEMBER = "mediapipe-0.10.21.dist-info/LICENSE"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
TFLITE_SHA256 = "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814"


def tensor_map(config: FaceMeshConfig) -> dict[str, str]:
    """torch parameter prefix -> tflite layer name, following the graph's numbering (read from its ops: the
    backbone's i-th block is depthwise_conv2d_i, conv2d_{i+1}, p_re_lu_{i+1}; the landmark head continues that
    numbering, the presence head was added later and numbered after it)."""
    names = {"stem": "conv2d_1", "stem_act": "p_re_lu_1"}
    n_backbone = config.stem_blocks + len(config.stage_channels) * config.blocks_per_stage

    def block(prefix: str, dw: int, conv: int, prelu: int):
        names.update({f"{prefix}.depthwise": f"depthwise_conv2d_{dw}", f"{prefix}.pointwise": f"conv2d_{conv}",
                      f"{prefix}.act": f"p_re_lu_{prelu}"})

    for i in range(n_backbone):
        block(f"backbone.{i}", i + 1, i + 2, i + 2)
    k = n_backbone + 1  # the next depthwise index (15)
    for i in range(config.landmark_blocks):
        block(f"landmark_head.blocks.{i}", k + i, k + i + 1, k + i + 1)
    k += config.landmark_blocks  # 18
    names.update({"landmark_head.reduce": f"conv2d_{k + 1}", "landmark_head.reduce_act": f"p_re_lu_{k + 1}"})
    block("landmark_head.refine", k, k + 2, k + 2)
    names["landmark_head.out"] = f"conv2d_{k + 3}"  # 21
    # The presence head: depthwise 23-24, conv 28-31, PReLU 26-28 (the numbers in between belong to the
    # attention model's layers, absent from this graph).
    block("presence_head.blocks.0", k + 5, k + 10, k + 8)
    names.update({"presence_head.reduce": f"conv2d_{k + 11}", "presence_head.reduce_act": f"p_re_lu_{k + 9}"})
    block("presence_head.refine", k + 6, k + 12, k + 10)
    names["presence_head.out"] = f"conv2d_{k + 13}"
    if config.presence_blocks != 1:
        raise SystemExit("The .tflite's presence head has one block")
    return names


def to_torch(kind: str, name: str, value: np.ndarray) -> np.ndarray:
    """A tflite constant in torch's layout: conv OHWI -> OIHW, depthwise 1HWC -> C1HW, PReLU alpha 11C -> C."""
    if name.endswith("/Alpha"):
        return value.reshape(-1)
    if name.endswith("/Bias"):
        return value
    if name.startswith("depthwise"):
        return value.transpose(3, 0, 1, 2)
    return value.transpose(0, 3, 1, 2)


def load_tflite_constants(tflite_path: Path) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path))
    interpreter.allocate_tensors()
    return {d["name"]: interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_tensor_details()
            if d["name"].endswith(("/Kernel", "/Bias", "/Alpha"))}


def convert(tflite_path: Path) -> FaceMeshModel:
    config = FaceMeshConfig(weights_source=f"MediaPipe {MEMBER} ({WHEEL_NAME})")
    model = FaceMeshModel(config)
    constants = load_tflite_constants(tflite_path)
    state, used = {}, set()
    for prefix, layer in tensor_map(config).items():
        suffixes = ("weight",) if prefix.endswith("act") else ("weight", "bias")
        for suffix in suffixes:
            source = f"{layer}/{'Alpha' if prefix.endswith('act') else 'Kernel' if suffix == 'weight' else 'Bias'}"
            if source not in constants or source in used:
                raise SystemExit(f"{source} is missing from the .tflite or used twice")
            used.add(source)
            value = to_torch(prefix, source, constants[source]).astype(np.float32)
            state[f"{prefix}.{suffix}"] = torch.from_numpy(value)
    unused = sorted(set(constants) - used)
    expected = dict(model.state_dict())
    if unused or set(state) != set(expected):
        raise SystemExit(f"Unmapped tflite tensors {unused}; unfilled parameters {sorted(set(expected) - set(state))}")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise SystemExit(f"{key}: tflite gives {tuple(value.shape)}, the model has {tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=True)
    return model.eval()


def litert_predict(tflite_path: Path, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The .tflite's own points (N x 468 x 3, crop pixels) and presence logits, one crop at a time."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite_path), num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    points, logits = [], []
    for crop in crops:
        interpreter.set_tensor(source, (crop.astype(np.float32) / 255.0)[None])
        interpreter.invoke()
        points.append(interpreter.get_tensor(outputs["conv2d_21"]).reshape(-1, 3))
        logits.append(float(interpreter.get_tensor(outputs["conv2d_31"]).reshape(-1)[0]))
    return np.stack(points), np.array(logits, np.float32)


def check_faces(london: Path | None, limit: int) -> tuple[list[str], np.ndarray]:
    """Crops of real faces, cut as the runtime cuts them: the packaged astronaut and Grace Hopper, and London Set
    photos when given."""
    import matplotlib.cbook
    import skimage.data
    from PIL import Image

    from expr_models.faces.detection import make_detector
    from expr_models.faces.mesh import mesh_crop

    detector = make_detector("retinaface")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        grace_hopper = np.asarray(Image.open(handle).convert("RGB"))
    photos = {"astronaut": skimage.data.astronaut(), "grace_hopper": grace_hopper}
    if london is not None:
        for path in sorted(london.glob("*/*.jpg"))[:limit]:
            photos[f"london/{path.parent.name}/{path.stem}"] = np.asarray(Image.open(path).convert("RGB"))
    names, crops = [], []
    for name, photo in photos.items():
        faces = detector.detect(photo)
        if faces:
            names.append(name)
            crops.append(mesh_crop(photo, faces[0])[0])
    return names, np.stack(crops)


def model_card_info(sha256: str, wheel_sha256: str, check: str) -> dict:
    source = (f"Google's MediaPipe Face Mesh landmark model, `{MEMBER}` from the PyPI wheel "
              f"[mediapipe 0.10.21](https://pypi.org/project/mediapipe/0.10.21/) (`{WHEEL_NAME}`, sha256 "
              f"`{wheel_sha256}`; the .tflite's sha256 `{sha256}`), Apache License 2.0, Copyright The MediaPipe "
              "Authors. Ported to PyTorch by `python -m train.tools.convert_face_mesh` (the weights copied unchanged, "
              "float16 as in the .tflite). Google describes the model's training and limits in MediaPipe Face "
              "Mesh's own model card (MediaPipe documentation).")
    return {
        "license": "apache-2.0",
        "training_data": "Trained by Google (see the original model card); no data of this project was used. " + source,
        "terms": "Apache License 2.0 (http://www.apache.org/licenses/LICENSE-2.0), as MediaPipe publishes the model. "
                 "No research-only data of this project went into these weights.",
        "metrics": {"agreement with the .tflite (ai-edge-litert 2.3.0), crop pixels of 192": check},
        "notes": "Used by `expr_models.faces.mesh`: the crop is turned so the eyes are level and is about 1.5 "
                 "times the face's extent, placed from RetinaFace's five landmarks; the points are mapped back to "
                 "the photo, z scaled like x and y. The point topology (lips, eyes, brows, face oval, triangles) is "
                 "MediaPipe's `face_mesh_connections.py`, also Apache-2.0.",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help=f"the downloaded {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/face_mesh"))
    parser.add_argument("--london", type=Path, default=None,
                        help="also check on the London Set photos here (e.g. ../shared/data/london)")
    parser.add_argument("--limit", type=int, default=134, help="at most this many London photos")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    with zipfile.ZipFile(args.wheel) as archive, tempfile.TemporaryDirectory() as tmp:
        tflite = Path(tmp) / "face_landmark.tflite"
        tflite.write_bytes(archive.read(MEMBER))
        # The Apache-2.0 text that ships with the model (the wheel's LICENSE, before its third-party notices).
        licence = archive.read(LICENSE_MEMBER).decode("utf-8").split("=" * 20)[0].rstrip() + "\n"
        sha256 = hashlib.sha256(tflite.read_bytes()).hexdigest()
        if sha256 != TFLITE_SHA256:
            raise SystemExit(f"{MEMBER} in {args.wheel} has sha256 {sha256}, not {TFLITE_SHA256}: another build")
        model = convert(tflite)
        names, crops = check_faces(args.london, args.limit)
        reference, reference_logits = litert_predict(tflite, crops)
    model.float()  # the stored float16 weights, computed in float32 as the .tflite computes them
    with torch.inference_mode():
        output = model(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1)
    points, logits = output.landmarks.numpy(), output.presence_logits.numpy()
    distance = np.linalg.norm(points[..., :2] - reference[..., :2], axis=-1)  # N x 468, crop pixels
    depth = np.abs(points[..., 2] - reference[..., 2])
    logit_gap = np.abs(logits - reference_logits)
    check = (f"{len(names)} real faces: x-y point difference mean {distance.mean():.1e}, max {distance.max():.1e} "
             f"px; z mean {depth.mean():.1e}, max {depth.max():.1e}; presence logit max {logit_gap.max():.1e}")
    print(check)
    if distance.mean() >= 0.1:
        raise SystemExit("The port disagrees with the .tflite by 0.1 px or more on average; not written.")
    model.card_info = model_card_info(sha256, hashlib.sha256(args.wheel.read_bytes()).hexdigest(), check)
    model.half().save_pretrained(args.out)
    (args.out / "LICENSE").write_text(licence)
    print(f"Wrote {args.out} ({sum(p.stat().st_size for p in args.out.iterdir()):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
