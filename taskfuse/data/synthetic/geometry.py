"""Pinhole camera over a flat ground plane, and the road laid on it.

World frame: X to the right, Y up, Z forward (metres), camera at (0, ``cam_height``, 0) looking along Z with
zero pitch, so the horizon is the image row ``horizon`` and every point (X, Y, Z) projects to

    x = vp_x + focal * X / Z,        y = horizon + focal * (cam_height - Y) / Z.

A ground pixel at row y therefore lies at distance Z = focal * cam_height / (y - horizon): rows near the
horizon are far, objects shrink as 1 / Z, and parallel road lines meet at the vanishing point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Z_FAR = 400.0
"""Ground beyond this distance (m) is drawn as the horizon haze."""
SHOULDER = 1.6
"""Width (m) of the gravel shoulder that replaces the sidewalk on a side with a guardrail."""


@dataclass(frozen=True)
class Camera:
    """Image size, focal length (px) and mounting height (m) shared by both registered cameras."""

    height: int
    width: int
    focal: float
    cam_height: float
    horizon: float
    vp_x: float

    def project(self, x: np.ndarray, z: np.ndarray, y: np.ndarray | float = 0.0) -> np.ndarray:
        """World points -> (..., 2) pixel coordinates (x, y) in the continuous convention (pixel c spans
        [c, c + 1))."""
        z = np.maximum(np.asarray(z, dtype=np.float64), 0.05)
        px = self.vp_x + self.focal * np.asarray(x) / z
        py = self.horizon + self.focal * (self.cam_height - np.asarray(y)) / z
        return np.stack(np.broadcast_arrays(px, py), axis=-1)

    @property
    def first_ground_row(self) -> int:
        """Index of the first pixel row whose centre lies below the horizon."""
        return min(max(int(np.floor(self.horizon + 0.5)), 0), self.height)

    def ground(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ground coordinates of the rows from ``first_ground_row`` down: X (R, W), Z (R, 1) clipped to
        ``Z_FAR``, and the row distance from the horizon dy (R, 1), all float32."""
        ys = np.arange(self.first_ground_row, self.height, dtype=np.float32)[:, None] + 0.5
        xs = np.arange(self.width, dtype=np.float32)[None, :] + 0.5
        dy = np.maximum(ys - np.float32(self.horizon), np.float32(1e-3))
        z = np.minimum(np.float32(self.focal * self.cam_height) / dy, np.float32(Z_FAR))
        x = (xs - np.float32(self.vp_x)) * z / np.float32(self.focal)
        return x, z, dy


@dataclass(frozen=True)
class Road:
    """A road of ``lanes`` lanes whose centre line bends as X = offset + curvature * Z^2 / 2.

    Lateral positions ``u`` are measured from the road centre line; the road surface spans |u| <= half,
    oncoming traffic uses the ``oncoming`` leftmost lanes. Each side (index 0 left, 1 right) has an asphalt
    gutter of width ``gutter`` outside the road, then either a sidewalk or, with a guardrail, a gravel
    shoulder.
    """

    lanes: int
    lane_width: float
    oncoming: int
    offset: float
    curvature: float
    gutter: float
    sidewalk: tuple[float, float]
    guardrail: tuple[bool, bool]

    @property
    def half(self) -> float:
        return self.lanes * self.lane_width / 2.0

    def lane_centre(self, i: int) -> float:
        return -self.half + (i + 0.5) * self.lane_width

    def centre(self, z: np.ndarray | float) -> np.ndarray | float:
        return self.offset + 0.5 * self.curvature * np.asarray(z) ** 2

    def world_x(self, u: np.ndarray | float, z: np.ndarray | float) -> np.ndarray | float:
        return self.centre(z) + u

    @property
    def kerb(self) -> float:
        """|u| of the kerb stone, where the asphalt ends."""
        return self.half + self.gutter

    def verge(self, side: int) -> float:
        """|u| where the sidewalk (or, beside a guardrail, the gravel shoulder) of ``side`` ends."""
        return self.kerb + (SHOULDER if self.guardrail[side] else self.sidewalk[side])
