"""How bright, and what colour, the teeth of an edited smile are, against the same person's real smile and the laws
the editor lights them by.

    python benchmarks/teeth_brightness.py [--split validation] [--methods cyclegan sagan] [--fit] [--casts]

Where an edit opens a mouth into a smile, the editor fills it with a stored London Set mouth, relit to the person
(``expr_models.faces.mouth_fill.relight``). Its teeth should be as bright as the person's own would be: not flat
white, not grey.

- ``--fit``: the law, refitted. On real smiles, the teeth level (``mouth_fill.teeth_level``: the 75th percentile
  luminance of the opening's pixels brighter than the lips) against the luminance of the lips, log against log, by
  least squares with each set weighing the same: GENKI-4K's smiles (the lips of the same photo) and the London Set's
  training people (their neutral photo's lips, as the editor sees them). Printed beside ``mouth_fill.TEETH_LIGHT``.
  The colour law the same way: the teeth's mean log(R/G) and log(B/G) against the lips', beside
  ``mouth_fill.TEETH_CHROMA``.
- The edits: each London Set person of ``--split`` (default validation), neutral -> happy through the editor. The
  edit is meshed in the input's face; in its opening, the teeth level and the share of teeth pixels at 245 or more
  (burnt out), against the same person's real smile (where it shows teeth) and against the law.
- ``--casts``: the same edits with the input and the real smile both tinted (``CASTS``: none, a warm print, a cool
  daylight cast); the edit's teeth colour (log(R/G), log(B/G)) less the real smile's, per cast.

Needs ../shared/data and, for ``--fit``, prepared/meshes (``python -m train.tools.cache_meshes --sets london
genki4k``); skips without. Writes benchmarks/results/teeth_brightness.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

import bench_utils as bench

BURNT = 245.0  # a tooth pixel this bright or brighter reads as flat white
# The casts ``--casts`` tints both photos with (R, G, B gains): none, a warm print, a cool daylight cast.
CASTS = {"none": (1.0, 1.0, 1.0), "warm": (1.0, 0.85, 0.62), "cool": (0.8, 0.95, 1.0)}


def lips_and_opening(photo: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The mean colour of the lips the mesh ``points`` outline, the RGB pixels between them, and whether the photo
    is grey there: as the editor measures a mouth (``mesh_warp.lips_and_greyness``, ``mouth_opening.between_lips``)."""
    from expr_models.faces.mesh_topology import LIPS_INNER
    from expr_models.faces.mesh_warp import lips_and_greyness
    from expr_models.faces.mouth_opening import between_lips

    points = np.asarray(points, np.float64)
    lips, grey = lips_and_greyness(photo, points, points)
    return lips, between_lips(photo[..., :3], points[list(LIPS_INNER)]), grey


def real_smiles(data: Path, meshes: Path) -> list[dict] | None:
    """Real smiles with teeth showing: the lips' colour (as the editor sees them) and the teeth's pixels. GENKI-4K's
    colour smiles (the lips of the same photo) and the London Set's training people (their neutral photo's lips)."""
    from expr_models.data.paired_faces import photo_pairs
    from expr_models.evaluation.realism import read_rgb
    from expr_models.faces.mouth_fill import teeth_pixels

    if not (meshes / "genki4k.npz").is_file() or not (meshes / "london.npz").is_file():
        print(f"--fit skipped: no GENKI-4K or London meshes in {meshes}")
        return None
    smiles = []
    genki = np.load(meshes / "genki4k.npz")
    for name, points, detected in zip(genki["ids"], genki["points"], genki["detected"]):
        if not detected:
            continue
        lips, opening, grey = lips_and_opening(read_rgb(data / str(name)), points)
        teeth = teeth_pixels(opening, lips) if len(opening) >= 40 and not grey else None
        if teeth is not None:
            smiles.append({"lips": lips, "teeth": teeth, "source": "genki4k"})
    london = np.load(meshes / "london.npz")
    by_id = {str(name): points for name, points in zip(london["ids"], london["points"])}
    for pair in photo_pairs(data, "train", sources=("london",)):
        if pair.target_expression != "happy":
            continue
        neutral = by_id.get(f"london/neutral/{pair.source_path.name}")
        smile = by_id.get(f"london/smiling/{pair.target_path.name}")
        if neutral is None or smile is None:
            continue
        opening = lips_and_opening(read_rgb(pair.target_path), smile)[1]
        lips = lips_and_opening(read_rgb(pair.source_path), neutral)[0]
        teeth = teeth_pixels(opening, lips) if len(opening) >= 200 else None
        if teeth is not None:
            smiles.append({"lips": lips, "teeth": teeth, "source": "london"})
    return smiles


def fit_line(x: np.ndarray, y: np.ndarray, sources: np.ndarray) -> dict:
    """y = a + b x by least squares, each set weighing the same: GENKI-4K's exposures and casts vary (teeth and lips
    change together), the London Set's studio light does not (dark lips over teeth as bright as anyone's). By count
    alone GENKI-4K's 1,660 smiles would set the line, and the London Set's dark-skinned people's teeth would come out
    greyer than theirs."""
    counts = {source: int(np.sum(sources == source)) for source in ("genki4k", "london")}
    weights = np.sqrt(np.array([1.0 / counts[source] for source in sources]))
    design = np.column_stack([np.ones(len(x)), x])
    coefficients, *_ = np.linalg.lstsq(design * weights[:, None], y * weights, rcond=None)
    residuals = y - design @ coefficients
    return {"a": round(float(coefficients[0]), 3), "b": round(float(coefficients[1]), 3), "smiles": counts,
            "log_residual": {source: round(float(np.std(residuals[sources == source])), 3) for source in counts}}


def fit_law(data: Path, meshes: Path) -> dict | None:
    """log(teeth level) = a + b log(lip luminance), and the teeth's log(R/G) and log(B/G) = a + b the lips', on real
    smiles with teeth showing."""
    from expr_models.faces.mouth_fill import log_chroma, luminance

    smiles = real_smiles(data, meshes)
    if smiles is None:
        return None
    sources = np.array([s["source"] for s in smiles])
    lips_light = np.log([float(luminance(s["lips"])) for s in smiles])
    teeth_light = np.log([float(np.percentile(luminance(s["teeth"]), 75)) for s in smiles])
    lips_colour = np.array([log_chroma(s["lips"]) for s in smiles])
    teeth_colour = np.array([log_chroma(s["teeth"]) for s in smiles])
    return {"light": fit_line(lips_light, teeth_light, sources),
            "red_over_green": fit_line(lips_colour[:, 0], teeth_colour[:, 0], sources),
            "blue_over_green": fit_line(lips_colour[:, 1], teeth_colour[:, 1], sources)}


def measure_edits(data: Path, split: str, methods: list[str], casts: dict[str, tuple[float, float, float]]
                  ) -> list[dict]:
    from expr_models.evaluation.realism import photo_mesh, read_rgb, realism_pairs
    from expr_models.faces.alignment import retinaface_face
    from expr_models.faces.mouth_fill import expected_teeth_level, log_chroma, luminance, teeth_level, teeth_pixels
    from expr_models.pipeline import ExpressionEditor

    editor = ExpressionEditor.from_pretrained(bench.REPO_ROOT / "checkpoints")
    rows = []
    for pair in realism_pairs(data, split):
        if pair.dataset != "london" or pair.target_expression != "happy":
            continue
        for cast, gains in casts.items():
            photo, real = (np.clip(read_rgb(path) * np.array(gains), 0, 255).astype(np.uint8)
                           for path in (pair.source_path, pair.target_path))
            found, found_real = retinaface_face(photo), retinaface_face(real)
            if found is None or found_real is None:
                continue
            source_mesh, real_mesh = photo_mesh(editor, photo, found), photo_mesh(editor, real, found_real)
            if source_mesh is None or real_mesh is None:
                continue
            lips = lips_and_opening(photo, source_mesh)[0]
            real_teeth = teeth_pixels(lips_and_opening(real, real_mesh)[1], lips)
            real_level = teeth_level(real_teeth, lips) if real_teeth is not None else None
            row = {"person": pair.subject, "cast": cast, "lips": round(float(luminance(lips)), 1),
                   "law": round(expected_teeth_level(lips), 1), "real": round(real_level, 1) if real_level else None}
            for method in methods:
                edited = np.asarray(editor.edit(Image.fromarray(photo), method=method, target="happy",
                                                read_expressions=False).image.convert("RGB"))
                edit_mesh = photo_mesh(editor, edited, found)
                opening = lips_and_opening(edited, edit_mesh)[1] if edit_mesh is not None else np.zeros((0, 3))
                teeth = teeth_pixels(opening, lips)
                level = teeth_level(teeth, lips) if teeth is not None else None
                row[method] = round(level, 1) if level else None
                row[f"{method}_burnt"] = round(float(np.mean(luminance(teeth) >= BURNT)), 3) if level else None
                colour = log_chroma(teeth) - log_chroma(real_teeth) if level and real_level else None
                row[f"{method}_colour"] = [round(float(v), 3) for v in colour] if colour is not None else None
            rows.append(row)
    return rows



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=bench.SHARED_DATA)
    parser.add_argument("--meshes", type=Path, default=bench.REPO_ROOT / "prepared" / "meshes")
    parser.add_argument("--split", default="validation", help="people to edit (default validation: not the test set)")
    parser.add_argument("--methods", nargs="+", default=["cyclegan", "sagan"])
    parser.add_argument("--fit", action="store_true", help="refit the laws on real smiles first")
    parser.add_argument("--casts", action="store_true", help="also edit the photos under a warm and a cool cast")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data at {args.data}")
        return
    from expr_models.faces.mouth_fill import TEETH_CHROMA, TEETH_LIGHT

    info = bench.machine()
    print(bench.machine_line(info))
    payload = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "split": args.split,
               "law_in_use": {"a": TEETH_LIGHT[0], "b": TEETH_LIGHT[1]},
               "colour_law_in_use": {"red_over_green": TEETH_CHROMA[0], "blue_over_green": TEETH_CHROMA[1]}}
    if args.fit:
        payload["fit"] = fit_law(args.data, args.meshes)
        print(f"laws in use: teeth = exp({TEETH_LIGHT[0]}) * lips ** {TEETH_LIGHT[1]}; colour (a, b) "
              f"{TEETH_CHROMA}; refitted: {payload['fit']}")
    casts = CASTS if args.casts else {"none": CASTS["none"]}
    rows = measure_edits(args.data, args.split, args.methods, casts)
    columns = [("person", "person"), ("cast", "cast"), ("lips", "lips"), ("law", "law"), ("real", "real teeth")]
    for method in args.methods:
        columns += [(method, f"{method} teeth"), (f"{method}_burnt", f"{method} burnt share"),
                    (f"{method}_colour", f"{method} colour less real")]
    print(bench.format_table(rows, columns))
    summary = {}
    for method in args.methods:
        plain = [r for r in rows if r["cast"] == "none"]
        against_real = [abs(np.log(r[method] / r["real"])) for r in plain if r[method] and r["real"]]
        against_law = [abs(np.log(r[method] / r["law"])) for r in plain if r[method]]
        burnt = [r[f"{method}_burnt"] for r in plain if r[f"{method}_burnt"] is not None]
        summary[method] = {"smiles_with_teeth": len(against_law),
                           "median_abs_log_vs_real": round(float(np.median(against_real)), 3) if against_real else None,
                           "median_abs_log_vs_law": round(float(np.median(against_law)), 3) if against_law else None,
                           "median_burnt_share": round(float(np.median(burnt)), 3) if burnt else None,
                           "max_burnt_share": round(float(np.max(burnt)), 3) if burnt else None}
        for cast in casts:  # the teeth's colour less the real smile's, log(R/G) and log(B/G): median of |difference|
            colours = np.array([r[f"{method}_colour"] for r in rows if r["cast"] == cast and r[f"{method}_colour"]])
            summary[method][f"colour_{cast}"] = ([round(float(v), 3) for v in np.median(np.abs(colours), 0)]
                                                 if len(colours) else None)
        print(f"{method}: {summary[method]}")
    payload.update(casts={name: casts[name] for name in casts}, rows=rows, summary=summary)
    print(f"wrote {bench.save_results('teeth_brightness', payload)}")


if __name__ == "__main__":
    main()
