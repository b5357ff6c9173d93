"""Tiny generated stand-ins for the real datasets, in their real naming and file formats.

Nothing here comes from ../shared/data: every image is drawn from a seeded random generator. Each ``make_*`` writes
a tree under a folder and returns what a correct builder should find there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

JAFFE_CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
JAFFE_SUBJECTS = ("KA", "KL", "KM", "KR", "MK", "NA")
FEI_SUBJECTS = (1, 2, 5, 7, 10, 11, 13, 20, 33, 107)  # not contiguous, like the real ids
FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
CKPLUS_SUBJECTS = ("S005", "S010", "S011", "S014", "S022", "S026", "S032", "S037", "S042", "S052")


def random_gray(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random grayscale picture (compresses like a photo, unlike pure noise)."""
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 60 * np.sin(x / rng.uniform(3, 9) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(3, 9))
    return np.clip(base + rng.normal(0, 8, (height, width)), 0, 255).astype(np.uint8)


def reversed_gray_palette_image(gray: np.ndarray) -> Image.Image:
    """A palette-mode ('P') image showing ``gray``, whose palette maps index i to gray 255 - i.

    The real KA.* JAFFE files are palette-mode with a gray palette; a reversed one also catches code that reads the
    indices as gray values instead of going through the palette.
    """
    image = Image.fromarray((255 - gray).astype(np.uint8)).convert("P")
    image.putpalette([value for i in range(256) for value in (255 - i,) * 3])
    return image


def make_jaffe(root: Path, subjects=JAFFE_SUBJECTS, palette_subject: str = "KA", seed: int = 0) -> dict:
    """``SS.XXn.id.tiff``: each subject poses each expression once, happy and neutral twice. Returns
    ``{"files": {name: (expression code, subject, gray array)}}``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    files, image_id = {}, 1
    for subject in subjects:
        for code in JAFFE_CODES:
            for take in range(1, 3 if code in ("HA", "NE") else 2):
                gray = random_gray(rng, 32, 32)
                name = f"{subject}.{code}{take}.{image_id}.tiff"
                image = reversed_gray_palette_image(gray) if subject == palette_subject else Image.fromarray(gray)
                image.save(root / name, format="TIFF")
                files[name] = (code, subject, gray)
                image_id += 1
    return {"files": files}


def make_fei(root: Path, subjects=FEI_SUBJECTS, seed: int = 1) -> dict:
    """``Na.jpg`` (neutral) and ``Nb.jpg`` (smiling) per subject, grayscale JPEG, portrait like the real 260x360."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        for pose in "ab":
            Image.fromarray(random_gray(rng, 36, 26)).save(root / f"{subject}{pose}.jpg", quality=90)
    return {"subjects": [str(s) for s in subjects]}


def make_fer2013(root: Path, train_per_class: int = 10, test_per_class: int = 3, seed: int = 2) -> dict:
    """``train|test/<class>/*.jpg``, 48x48 grayscale JPEG, named like the real files."""
    rng = np.random.default_rng(seed)
    counter = 0
    for split, per_class, prefix in (("train", train_per_class, "Training"), ("test", test_per_class, "PublicTest")):
        for name in FER_CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(per_class):
                counter += 1
                Image.fromarray(random_gray(rng, 48, 48)).save(folder / f"{prefix}_{1000 + counter}.jpg")
    return {"train": train_per_class * len(FER_CLASSES), "test": test_per_class * len(FER_CLASSES)}


def make_ckplus(root: Path, subjects=CKPLUS_SUBJECTS, frames: int = 3, seed: int = 3) -> dict:
    """``<class>/S005_001_00000009.png``: the last ``frames`` frames of one sequence per subject and class."""
    rng = np.random.default_rng(seed)
    for class_index, name in enumerate(CKPLUS_CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for subject in subjects:
            for frame in range(frames):
                file = f"{subject}_{class_index + 1:03d}_{frame + 10:08d}.png"
                Image.fromarray(random_gray(rng, 48, 48)).save(folder / file)
    return {"per_class": len(subjects) * frames}


def write_jpeg(path: Path, rng: np.random.Generator, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    gray = random_gray(rng, size[1], size[0])
    Image.fromarray(np.stack([gray, gray[::-1], gray[:, ::-1]], axis=-1)).save(path)


WIDER_TRAIN_GT = """\
0--Parade/0_Parade_marchingband_1_1.jpg
2
10 5 8 9 0 0 0 0 0 0 
2 3 6 7 2 1 1 1 2 1 
0--Parade/0_Parade_marchingband_1_2.jpg
1
1 1 5 5 0 0 0 0 0 0 
0--Parade/0_Parade_marchingband_1_3.jpg
0
0 0 0 0 0 0 0 0 0 0 
0--Parade/0_Parade_marchingband_1_4.jpg
3
4 4 6 6 1 0 0 0 0 0 
30 20 0 5 2 0 0 0 1 0 
12 12 5 4 0 0 0 0 0 1 
0--Parade/0_Parade_marchingband_1_5.jpg
1
3 3 5 5 0 0 0 0 0 0 
0--Parade/0_Parade_marchingband_1_6.jpg
3
1 2 3 4 0 0 0 0 0 0 
5 6 7"""
# Entries: 1 present (a normal and an invalid-flagged box), 2 absent from the subset, 3 present with no faces
# (the official placeholder line), 4 present with a zero-size box, 5 present but unreadable, 6 truncated at the end
# of the file (in the middle of a box line). 7 is present but not listed.

WIDER_VAL_GT = """\
13--Interview/13_Interview_Interview_On_Location_13_1.jpg
1
5 5 10 12 0 0 0 0 0 0 
13--Interview/13_Interview_Interview_On_Location_13_2.jpg
3
5 5 10 12 0 0 0 0 0 0 
not a box line
1 1 4 4 9 0 0 0 0 0 
13--Interview/13_Interview_Interview_On_Location_13_3.jpg
2
5 5 10 12 0 0 0 0 0 0 
13--Interview/13_Interview_Interview_On_Location_13_4.jpg
x
13--Interview/13_Interview_Interview_On_Location_13_1.jpg
1
1 1 2 2 0 0 0 0 0 0 
13--Interview/13_Interview_Interview_On_Location_13_5.jpg
1
2 2 3 3 0 0 0 0 0 0 
"""
# Entries: 1 present; 2 present, one good box plus a malformed line and an out-of-range blur value; 3 cut short
# by the next entry; 4 with a garbled count; 1 again (duplicate); 5 present.


def make_wider(root: Path, seed: int = 4) -> dict:
    """A WIDER FACE tree with the real layout and the defects of the real gt files."""
    rng = np.random.default_rng(seed)
    split_dir = root / "wider_face_split"
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / "wider_face_train_bbx_gt.txt").write_text(WIDER_TRAIN_GT)
    (split_dir / "wider_face_val_bbx_gt.txt").write_text(WIDER_VAL_GT)
    train = root / "WIDER_train" / "images" / "0--Parade"
    for i in (1, 3, 4, 6, 7):
        write_jpeg(train / f"0_Parade_marchingband_1_{i}.jpg", rng)
    (train / "0_Parade_marchingband_1_5.jpg").write_bytes(b"this is not a jpeg")
    val = root / "WIDER_val" / "images" / "13--Interview"
    for i in (1, 2, 3, 4, 5):
        write_jpeg(val / f"13_Interview_Interview_On_Location_13_{i}.jpg", rng)
    return {"train_kept": 3, "validation_kept": 3}
