"""What the warp-and-refine GANs' training scripts share (``train/cyclegan_warp.py``, ``train/sagan_warp.py``): aligned
image columns as tensors, the average edit's fields as priors, the paired L1 against the real target (blurred,
exposure-matched, face-weighted), the learned flow's smoothness and the validation proxy of the realism ratio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from expr_models.faces.alignment import frame_face_mask
from train.args import REPO_ROOT

# The proxy's mouth window in the aligned frame (fractions of the side): the realism metric's region of the RetinaFace
# box (25-75% of its width, 58-95% of its height) where it falls in the frame (median over 12 validation FEI and
# London neutrals; the box is 0.62 of the side wide, so the metric's blur is ~0.8 px at 128 px).
MOUTH_ROWS, MOUTH_COLUMNS = (0.55, 0.86), (0.35, 0.66)
UPPER_ROWS, UPPER_COLUMNS = (0.15, 0.45), (0.2, 0.8)  # brows and eyes: the pair's exposure difference is read here


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``N x H x W x 3`` uint8 -> ``N x 3 x H x W`` float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def stacked(dataset, column: str) -> np.ndarray:
    return np.stack([np.asarray(image.convert("RGB")) for image in dataset[column]])


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return images
    radius = max(1, int(3 * sigma + 0.5))
    taps = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    horizontal = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(horizontal, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def band(images: torch.Tensor, rows: tuple[float, float], columns: tuple[float, float]) -> torch.Tensor:
    height, width = images.shape[-2:]
    return images[..., int(rows[0] * height):int(rows[1] * height), int(columns[0] * width):int(columns[1] * width)]


def exposure_matched(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``target`` shifted per channel so that its upper face has ``source``'s mean level (photos of a pair differ in
    exposure; the expression does not change the brows and eyes)."""
    shift = (band(target, UPPER_ROWS, UPPER_COLUMNS) - band(source, UPPER_ROWS, UPPER_COLUMNS)).mean((-2, -1),
                                                                                                    keepdim=True)
    return target - shift


def proxy_ratios(edited: torch.Tensor, source: torch.Tensor, target: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    """Per sample: error(edit, real) / error(input, real) on the grey, blurred mouth window of the aligned frame."""
    def mouth(images):
        return band(gaussian_blur(images.float().mean(1, keepdim=True), sigma), MOUTH_ROWS, MOUTH_COLUMNS)

    real = mouth(exposure_matched(target, source))
    edited_error = (mouth(edited) - real).abs().mean((1, 2, 3))
    input_error = (mouth(source) - real).abs().mean((1, 2, 3))
    return edited_error / input_error.clamp_min(1e-6)


# Brows and eyes (fractions of the frame's side): weighted in the paired loss for targets that move them.
BROW_ROWS, BROW_COLUMNS = (0.22, 0.47), (0.18, 0.82)


def face_weight(resolution: int, mouth_weight: float, brow_weight: float = 0.0) -> torch.Tensor:
    """``1 x 1 x S x S``: the paired loss's weight, the face mask with the mouth window (and the brow and eye band)
    weighted ``1 + mouth_weight`` (``1 + brow_weight``) times."""
    weight = torch.from_numpy(frame_face_mask(resolution).copy())[None, None]
    band(weight, MOUTH_ROWS, MOUTH_COLUMNS).mul_(1 + mouth_weight)
    band(weight, BROW_ROWS, BROW_COLUMNS).mul_(1 + brow_weight)
    return weight


def paired_l1(edited: torch.Tensor, source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              sigma: float) -> torch.Tensor:
    """Weighted L1 between the blurred edit and the blurred, exposure-matched real target (``weight``: ``1 x 1 x S x
    S`` or ``N x 1 x S x S``), normalised by the weight's mean."""
    difference = (gaussian_blur(edited.float(), sigma)
                  - gaussian_blur(exposure_matched(target, source).float(), sigma)).abs()
    return (difference * weight).mean() / weight.mean()


def resized(images: np.ndarray, size: int) -> np.ndarray:
    """Aligned crops (``N x H x H x 3``) at the model's resolution, by the alignment's one resampling."""
    from expr_models.models.warp_refine import to_model_resolution

    if images.shape[1] == size:
        return images
    return np.stack([to_model_resolution(image, size) for image in images])


def average_edit_fields(average, source: str, target: str, size: int, channels: int) -> tuple[torch.Tensor,
                                                                                           torch.Tensor]:
    """The average edit's flow (``1 x 2 x S x S``) and residual (``1 x C x S x S``) for ``source -> target``, at
    ``size`` (bilinear); a 3-channel residual becomes grey for a 1-channel model, and the other way round."""
    index = average.pair_index(source, target)
    flow = average.flows[index:index + 1].float()
    residual = average.residuals[index:index + 1].float()
    if residual.shape[1] != channels:
        residual = residual.mean(1, keepdim=True).expand(-1, channels, -1, -1)
    flow = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)
    return flow, F.interpolate(residual, size=(size, size), mode="bilinear", align_corners=False)


class ValidationPairs(torch.utils.data.Dataset):
    def __init__(self, pairs: dict[str, torch.Tensor]):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs["x"])

    def __getitem__(self, index: int) -> dict:
        return {key: images[index] for key, images in self.pairs.items()}


def shown_path(path: Path) -> str:
    """A path as the model card shows it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def flow_tv(flow: torch.Tensor) -> torch.Tensor:
    from expr_models.models.layers import flow_smoothness

    return flow_smoothness(flow.float())


