"""Top-down keypoint estimation around known boxes: crop each object, regress Gaussian heatmaps, decode peaks.

This is the pipeline of SimpleBaseline and HRNet (Sun et al., CVPR 2019), which seed 003 (FGFusion, §3.3.2) uses
to score fused images by aircraft keypoint AP.

Coordinates are continuous pixels as in ``taskfuse.data.transforms``: pixel (row r, column c) covers
[c, c + 1) x [r, r + 1). A crop of ``input_size`` (h, w) tiles an image region evenly, so the affine ``transforms``
(N, 2, 3) map a crop point ``u`` to the image point ``A u + b``. Heatmap pixels tile the crop likewise with
``stride`` crop pixels each, so heatmap point ``p`` is crop point ``stride * p``. With these conventions a point
maps exactly in both directions (no half-pixel bias), so the Gaussian targets are centred at the sub-pixel keypoint
position rather than at HRNet's rounded one, and flipped heatmaps need no one-pixel shift.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError

VISIBILITY_WEIGHTS = (0.0, 0.5, 1.0)
"""Loss weight of a keypoint by its COCO visibility v = 0, 1, 2: seed 003 §3.3.2 gives invisible, occluded and
visible aircraft keypoints the weights 0, 0.5 and 1."""


def crop_instances(
    images: Tensor, boxes: Tensor, input_size: tuple[int, int] = (128, 96), padding: float = 1.25
) -> tuple[Tensor, Tensor]:
    """Crop every box of one image to ``input_size`` (h, w) with bilinear sampling.

    ``images`` (C, H, W); ``boxes`` (N, 4) x1, y1, x2, y2. Each box is grown about its centre to the aspect ratio
    w / h of the input, then by ``padding`` (HRNet's ``_box2cs``: 1.25), and sides below one pixel become one
    pixel. Samples outside the image are 0. Returns crops (N, C, h, w) and transforms (N, 2, 3), the affine map
    from crop pixels to image pixels.
    """
    if images.dim() != 3:
        raise TaskfuseError(f"crop_instances takes one (C, H, W) image, got shape {tuple(images.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise TaskfuseError(f"crop_instances boxes must be (N, 4) x1, y1, x2, y2, got shape {tuple(boxes.shape)}")
    h, w = input_size
    c, height, width = images.shape
    b = boxes.to(images.device, torch.float32)
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = (b[:, 2:] - b[:, :2]).clamp(min=1.0)
    aspect = w / h
    bw = torch.maximum(size[:, 0], size[:, 1] * aspect) * padding
    bh = bw / aspect
    n = len(b)
    transforms = torch.zeros(n, 2, 3, device=images.device)
    transforms[:, 0, 0], transforms[:, 1, 1] = bw / w, bh / h
    transforms[:, 0, 2], transforms[:, 1, 2] = centre[:, 0] - bw / 2, centre[:, 1] - bh / 2
    if n == 0:
        return images.new_zeros(0, c, h, w), transforms
    theta = torch.zeros(n, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 1, 1] = bw / width, bh / height
    theta[:, 0, 2], theta[:, 1, 2] = 2 * centre[:, 0] / width - 1, 2 * centre[:, 1] / height - 1
    grid = F.affine_grid(theta.to(images.dtype), [n, c, h, w], align_corners=False)
    crops = F.grid_sample(images.expand(n, -1, -1, -1), grid, mode="bilinear", align_corners=False)
    return crops, transforms


def _to_crop(points: Tensor, transforms: Tensor) -> Tensor:
    """Image points (N, K, 2) -> crop points, by the inverse of each affine."""
    a, b = transforms[:, :, :2], transforms[:, :, 2]
    return torch.linalg.solve(a[:, None], (points - b[:, None]).unsqueeze(-1)).squeeze(-1)


def _to_image(points: Tensor, transforms: Tensor) -> Tensor:
    """Crop points (N, K, 2) -> image points."""
    a, b = transforms[:, :, :2], transforms[:, :, 2]
    return torch.einsum("nij,nkj->nki", a, points) + b[:, None]


def encode_heatmaps(
    keypoints: Tensor,
    transforms: Tensor,
    heatmap_size: tuple[int, int],
    sigma: float = 2.0,
    stride: float = 4,
    visibility_weights: Sequence[float] = VISIBILITY_WEIGHTS,
) -> tuple[Tensor, Tensor]:
    """Gaussian heatmap targets of keypoints (N, K, 3) ``[x, y, v]`` in image pixels.

    Target k of instance n is exp(-d² / (2 sigma²)), d the distance in heatmap pixels from a pixel centre to
    the keypoint (peak 1, sigma 2 as HRNet at 1/4 resolution). Returns heatmaps (N, K, hh, hw) and weights
    (N, K): ``visibility_weights[v]``, and 0 for a keypoint outside the heatmap; a zero-weight target is all 0.
    """
    if keypoints.dim() != 3 or keypoints.shape[-1] != 3 or transforms.shape != (len(keypoints), 2, 3):
        raise TaskfuseError(
            f"encode_heatmaps needs keypoints (N, K, 3) and transforms (N, 2, 3), got {tuple(keypoints.shape)} and "
            f"{tuple(transforms.shape)}"
        )
    vis = keypoints[..., 2].round().long()
    if ((vis < 0) | (vis > 2)).any():
        raise TaskfuseError("keypoint visibility must be 0 (not labelled), 1 (occluded) or 2 (visible)")
    hh, hw = heatmap_size
    p = _to_crop(keypoints[..., :2].float(), transforms.float()) / stride
    px, py = p[..., 0], p[..., 1]
    inside = (px >= 0) & (px < hw) & (py >= 0) & (py < hh)
    table = torch.tensor(visibility_weights, dtype=torch.float32, device=keypoints.device)
    weights = table[vis] * inside
    gx = torch.arange(hw, device=keypoints.device) + 0.5
    gy = torch.arange(hh, device=keypoints.device) + 0.5
    ex = torch.exp(-((gx - px[..., None]) ** 2) / (2 * sigma**2))
    ey = torch.exp(-((gy - py[..., None]) ** 2) / (2 * sigma**2))
    heatmaps = ey[..., :, None] * ex[..., None, :] * (weights > 0)[..., None, None]
    return heatmaps, weights


def heatmap_loss(pred: Tensor, target: Tensor, weights: Tensor) -> Tensor:
    """Visibility-weighted heatmap MSE, HRNet's ``JointsMSELoss`` with ``use_target_weight``.

    loss = 0.5 · mean over n, k and pixels of (w_nk · (pred − target))². The weights multiply both maps before
    the squared error, as in HRNet, so with seed 003's weights an occluded keypoint counts 0.25 of a visible one
    and an invisible one not at all. (Seed 003 §3.3.2 names this a "weighted cross-entropy"; the heatmap
    regression of the HRNet it trains is this weighted MSE.) No instances give 0, still attached to ``pred``.
    """
    if pred.shape != target.shape or weights.shape != pred.shape[:2]:
        raise TaskfuseError(
            f"heatmap_loss needs pred and target of one shape (N, K, h, w) and weights (N, K); got "
            f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(weights.shape)}"
        )
    if pred.numel() == 0:
        return pred.sum() * 0.0
    diff = (pred - target) * weights[..., None, None]
    return 0.5 * diff.pow(2).mean()


def decode_heatmaps(heatmaps: Tensor, transforms: Tensor, stride: float = 4) -> Tensor:
    """Keypoints (N, K, 3) ``[x, y, score]`` in image pixels from heatmaps (N, K, hh, hw), as HRNet's
    ``get_final_preds``: the centre of the maximum pixel, moved a quarter pixel along each axis toward the higher
    of its two neighbours on that axis (not at the border); the score is the maximum."""
    n, k, hh, hw = heatmaps.shape
    flat = heatmaps.float().reshape(n, k, hh * hw)
    score, index = flat.max(dim=-1)
    ix, iy = index % hw, index // hw

    def at(y: Tensor, x: Tensor) -> Tensor:
        return flat.gather(-1, (y.clamp(0, hh - 1) * hw + x.clamp(0, hw - 1)).unsqueeze(-1)).squeeze(-1)

    dx = torch.where((ix > 0) & (ix < hw - 1), at(iy, ix + 1) - at(iy, ix - 1), torch.zeros_like(score))
    dy = torch.where((iy > 0) & (iy < hh - 1), at(iy + 1, ix) - at(iy - 1, ix), torch.zeros_like(score))
    p = torch.stack([ix + 0.5 + 0.25 * dx.sign(), iy + 0.5 + 0.25 * dy.sign()], dim=-1)
    xy = _to_image(p * stride, transforms.float())
    return torch.cat([xy, score.unsqueeze(-1)], dim=-1)


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Channel order of a mirrored prediction: each index of a left/right pair takes its partner's place."""
    perm = list(range(num_keypoints))
    for a, b in flip_pairs:
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise TaskfuseError(f"flip pair ({a}, {b}) names a keypoint outside 0..{num_keypoints - 1}")
        perm[a], perm[b] = b, a
    return perm


@torch.no_grad()
def predict_instances(
    net: nn.Module,
    image: Tensor,
    boxes: Tensor,
    input_size: tuple[int, int] = (128, 96),
    flip_pairs: Sequence[tuple[int, int]] | None = None,
) -> Tensor:
    """Keypoints (N, K, 3) ``[x, y, score]`` of the objects in ``boxes`` (N, 4) of one normalised image (C, H, W).

    With ``flip_pairs`` (left/right keypoint index pairs; ``()`` when there are none) the mirrored crops are run
    too and their heatmaps, mirrored back with the pairs swapped, are averaged with the direct ones (HRNet's
    flip test). ``net`` is used as it is: put it in eval mode first.
    """
    crops, transforms = crop_instances(image, boxes, input_size)
    heatmaps = net(crops)
    if flip_pairs is not None:
        mirrored = net(crops.flip(-1)).flip(-1)
        heatmaps = (heatmaps + mirrored[:, flip_permutation(heatmaps.shape[1], flip_pairs)]) / 2
    return decode_heatmaps(heatmaps, transforms, input_size[1] / heatmaps.shape[-1])
