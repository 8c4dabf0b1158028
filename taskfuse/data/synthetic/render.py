"""Rasterise a scene description into registered visible and infrared images, labels, boxes and keypoints.

1. Geometry, shared by both cameras: ground and road paint per pixel from the ground-plane coordinates
   (with exact area coverage of each pixel's footprint, so thin far lines fade instead of aliasing), then
   sprites in painter's order into one part-id map; materials are looked up per part.
2. Visible camera: radiance = albedo x illuminance x texture + emitted light, then haze, veiling glare
   (night), optics blur and a sensor with shot and read noise (``SceneConfig.vis_full_well``,
   ``vis_read_noise``) amplified by the night gain. Illuminance by day is sun (blocked in shadows) plus
   skylight; at night ambient moonlight plus street lamps (inverse-square falloff) and headlight beams.
3. Infrared camera: apparent temperature (ground in cast shadow loses half its solar heating) -> haze ->
   automatic gain control (linear stretch mixed with plateau histogram equalisation), rendered at
   ``ir_resolution`` of the size through a Gaussian optics blur, with temporal and column fixed-pattern
   noise, and upsampled bilinearly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from taskfuse.data.synthetic.config import SceneConfig
from taskfuse.data.synthetic.geometry import Z_FAR
from taskfuse.data.synthetic.materials import WHITE_PAINT, YELLOW_PAINT
from taskfuse.data.synthetic.objects import Light, Part, Sprite
from taskfuse.data.synthetic.scene import Scene

CURVE, CAR_STOP, BUMP = 4, 5, 8
SHIFT = 4
"""Sub-pixel bits for OpenCV drawing (coordinates in 1/16 px)."""


@dataclass
class Rendered:
    """Both images and the annotations of one scene, as arrays."""

    ir: np.ndarray
    """(H, W) float32 in [0, 1]."""
    vi: np.ndarray
    """(H, W, 3) float32 in [0, 1]."""
    label: np.ndarray
    """(H, W) uint8 MSRS class indices."""
    boxes: np.ndarray
    """(N, 5) float32 [class, x1, y1, x2, y2]."""
    keypoints: np.ndarray
    """(N, 4, 3) float32 [x, y, v]."""


def render(scene: Scene, cfg: SceneConfig) -> Rendered:
    """Ground and sprites into shared per-pixel buffers (material, label, world position), then both
    cameras and the annotations from them."""
    cam, clim = scene.cam, scene.clim
    h, w, r0 = cam.height, cam.width, cam.first_ground_row
    rng = np.random.default_rng(scene.noise_seed)
    f32 = np.float32
    alb = np.zeros((h, w, 3), dtype=f32)
    temp = np.zeros((h, w), dtype=f32)
    label = np.zeros((h, w), dtype=np.uint8)
    grain = np.zeros((h, w), dtype=f32)
    wx = np.zeros((h, w), dtype=f32)
    wz = np.full((h, w), Z_FAR, dtype=f32)
    alb[r0:], temp[r0:], label[r0:], grain[r0:], wx[r0:], wz[r0:] = _ground(scene, cfg, rng)
    sprites = scene.ordered()
    pid, lut, instances = _rasterise(sprites, h, w)
    obj = pid > 0
    sky = ~obj
    sky[r0:] = False
    ground = ~obj & ~sky
    shadow = _shadow_map(sprites, h, w) * ground
    temp -= f32(0.5 * clim.sun_heat) * shadow
    temp[sky] = _sky_temp(scene)[sky]

    ys, xs = np.nonzero(obj)
    ids = pid[ys, xs]
    alb[ys, xs] = lut["albedo"][ids]
    temp[ys, xs] = lut["temp"][ids]
    label[ys, xs] = lut["cls"][ids]
    grain[ys, xs] = lut["grain"][ids]
    wx[ys, xs] = lut["x"][ids]
    wz[ys, xs] = lut["z"][ids]
    emit = np.zeros((h, w, 3), dtype=f32)
    emit[ys, xs] = lut["emit"][ids]
    rows = np.arange(h, dtype=f32)[:, None] + f32(0.5)
    wy = np.maximum(f32(cam.cam_height) - (rows - f32(cam.horizon)) * wz / f32(cam.focal), f32(0))

    lights = [lt for sp in sprites for lt in sp.lights]
    vi = _visible(scene, cfg, rng, alb, grain, emit, shadow, sky, wx, wy, wz, lights)
    ir = _infrared(scene, cfg, rng, temp, sky, wz)
    boxes, keypoints = _annotate(instances, lut["inst"][pid], h, w)
    return Rendered(ir, vi, label, boxes, keypoints)


def _overlap(x: np.ndarray, half_px: np.ndarray, a: float | np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """Fraction of the pixel footprint [x - half_px, x + half_px] inside [a, b]."""
    lo = np.maximum(x - half_px, a)
    hi = np.minimum(x + half_px, b)
    return np.clip(hi - lo, 0.0, None) / (2 * half_px)


def _dashes(x: np.ndarray, half_px: np.ndarray, period: float, length: float, phase: float) -> np.ndarray:
    """Fraction of the footprint covered by a pattern that is on for ``length`` of every ``period``."""

    def cum(t: np.ndarray) -> np.ndarray:
        t = t - phase
        return np.floor(t / period) * length + np.clip(np.mod(t, period), 0.0, length)

    return (cum(x + half_px) - cum(x - half_px)) / (2 * half_px)


def _lattice(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, cell: float, extent: tuple) -> np.ndarray:
    """Smooth value noise (std ~0.5) at world coordinates (a, b): bilinear interpolation of a random
    lattice with spacing ``cell`` over ``extent`` = (a0, a1, b0, b1)."""
    a0, a1, b0, b1 = extent
    na, nb = int((a1 - a0) / cell) + 2, int((b1 - b0) / cell) + 2
    grid = rng.standard_normal((nb, na), dtype=np.float32) * np.float32(0.5)
    map_a = (a - np.float32(a0)) / np.float32(cell)
    map_b = np.broadcast_to((b - np.float32(b0)) / np.float32(cell), map_a.shape)
    return cv2.remap(grid, map_a, np.ascontiguousarray(map_b), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _ground(scene: Scene, cfg: SceneConfig, rng: np.random.Generator):
    """Albedo (R, W, 3), temperature, label, texture amplitude, X and Z of the ground rows (from
    ``Camera.first_ground_row``), with the road paint laid on."""
    cam, road, marks, g, clim = scene.cam, scene.road, scene.marks, scene.ground, scene.clim
    gx, gz, dy = cam.ground()
    f32 = np.float32
    half_x = f32(0.5 / cam.focal) * gz
    half_z = f32(0.5) * gz / dy
    u = gx - road.centre(gz).astype(f32)
    au = np.abs(u)
    right = u >= 0
    verge = np.where(right, f32(road.verge(1)), f32(road.verge(0)))
    rail = np.where(right, road.guardrail[1], road.guardrail[0])
    asphalt = au < road.kerb
    walk = ~asphalt & (au < verge)
    n = clim.night
    temps = [
        clim.t_road,
        clim.t_air + 0.5 * clim.road_excess if n else clim.surface(g.sidewalk),
        clim.t_air + 0.4 * clim.road_excess if n else clim.surface(g.shoulder),
        clim.t_air - 2.0 if n else clim.surface(g.terrain) - 0.5 * clim.sun_heat,
    ]
    zone = np.select([asphalt, walk & ~rail, walk & rail], [0, 1, 2], 3)
    alb = np.asarray([g.asphalt, g.sidewalk, g.shoulder, g.terrain], dtype=f32)[zone]
    extent = (-80.0, 80.0, 0.0, 420.0)
    patches = _lattice(rng, u, gz, 1.5, extent) * np.asarray([0.15, 0.25, 0.25, 0.25], dtype=f32)[zone]
    alb *= (1 + patches)[..., None]
    temp = np.asarray(temps, dtype=f32)[zone] + _lattice(rng, u, gz, 2.5, extent) * np.where(asphalt, f32(1), f32(2))
    grain = np.asarray([0.12, 0.08, 0.2, 0.25], dtype=f32)[zone] * np.clip(f32(0.01) / half_x, 0.15, 1.0)
    label = np.zeros(u.shape, dtype=np.uint8)
    paint = np.zeros(u.shape, dtype=f32)

    def lay(rows: slice, cov: np.ndarray, colour, cls: int = 0, wear: float = marks.wear) -> None:
        """Mix paint of ``colour`` with coverage ``cov`` into the rows ``rows``."""
        hit = cov > 0
        if not hit.any():
            return
        c = np.minimum(cov[hit], 1.0) * f32(wear)
        block = alb[rows]
        colour = np.broadcast_to(np.asarray(colour, dtype=f32), (*cov.shape, 3))
        block[hit] = block[hit] * (1 - c[:, None]) + colour[hit] * c[:, None]
        p = paint[rows]
        p[hit] = np.maximum(p[hit], c)
        if cls:
            label[rows][(cov >= 0.5) & asphalt[rows]] = cls

    def band(z0: float, z1: float) -> tuple[slice, np.ndarray]:
        """Rows of a band across the road from distance z0 to z1, and their coverage along Z."""
        cover = _overlap(gz[:, 0], half_z[:, 0], z0, z1)
        idx = np.nonzero(cover > 0)[0]
        rows = slice(int(idx[0]), int(idx[-1]) + 1) if len(idx) else slice(0, 0)
        return rows, cover[rows, None]

    every = slice(None)
    dash = _dashes(gz, half_z, marks.dash_period, marks.dash_length, marks.dash_phase)
    for k in range(1, road.lanes):
        u0 = -road.half + k * road.lane_width
        if road.oncoming and k == road.oncoming:
            lay(
                every,
                _overlap(u, half_x, u0 - 0.17, u0 - 0.07) + _overlap(u, half_x, u0 + 0.07, u0 + 0.17),
                YELLOW_PAINT,
            )
        else:
            lay(every, _overlap(u, half_x, u0 - 0.06, u0 + 0.06) * dash, WHITE_PAINT)
    if marks.edge_lines:
        for e in (road.half - 0.15, 0.15 - road.half):
            lay(every, _overlap(u, half_x, e - 0.06, e + 0.06), WHITE_PAINT)
    first = _dashes(gz, half_z, 2 * marks.kerb_period, marks.kerb_period, 0.0)[..., None]
    for side, pair in enumerate(marks.kerb):
        if pair is not None:
            inner, outer = road.half + 0.1, road.half + 0.1 + marks.kerb_width
            lo, hi = (-outer, -inner) if side == 0 else (inner, outer)
            colour = np.asarray(pair[0], dtype=f32) * first + np.asarray(pair[1], dtype=f32) * (1 - first)
            lay(every, _overlap(u, half_x, lo, hi), colour, CURVE, wear=1.0)
    if marks.zebra is not None:
        rows, cover = band(marks.zebra, marks.zebra + 3.0)
        lay(rows, cover * _dashes(u[rows], half_x[rows], 1.0, 0.5, 0.0) * (au[rows] < road.half), WHITE_PAINT)
    if marks.stop is not None:
        div = -road.half + road.oncoming * road.lane_width
        rows, cover = band(marks.stop, marks.stop + 0.45)
        lay(rows, cover * _overlap(u[rows], half_x[rows], div, road.half), WHITE_PAINT, CAR_STOP)
    if marks.bump is not None:
        z0, depth = marks.bump
        rows, cover = band(z0, z0 + depth)
        stripe = _dashes(u[rows] + (gz[rows] - z0), half_x[rows], 0.6, 0.3, 0.0)[..., None]
        colour = np.asarray(YELLOW_PAINT, dtype=f32) * stripe + f32(0.05) * (1 - stripe)
        lay(rows, cover * _overlap(u[rows], half_x[rows], -road.half, road.half), colour, BUMP, wear=1.0)
    temp -= f32(cfg.paint_ir_contrast * clim.sun_heat / 10.0) * paint
    return alb, temp, label, grain, gx, np.broadcast_to(gz, u.shape)


def _pts(part: Part, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Continuous pixel coordinates -> OpenCV fixed-point integer points (pixel centres at integers)."""
    return np.round((part.pts - (offset[0] + 0.5, offset[1] + 0.5)) * (1 << SHIFT)).astype(np.int32)


def _draw(img: np.ndarray, part: Part, value: int, offset: tuple[float, float] = (0.0, 0.0)) -> None:
    pts = _pts(part, offset)
    if part.stroke > 0:
        cv2.polylines(img, [pts], part.closed, value, max(round(part.stroke), 1), cv2.LINE_8, SHIFT)
    else:
        cv2.fillPoly(img, [pts], value, cv2.LINE_8, SHIFT)


@dataclass
class _Instance:
    cls: int
    extremes: np.ndarray
    """(4, 2) pixel-centre coordinates of the top, bottom, left and right points of the full silhouette."""


def _rasterise(sprites: list[Sprite], h: int, w: int) -> tuple[np.ndarray, dict, list[_Instance]]:
    """Draw every part's id into one map (painter's order) and tabulate the part materials."""
    pid = np.zeros((h, w), dtype=np.int32)
    rows: dict[str, list] = {k: [] for k in ("albedo", "temp", "emit", "grain", "cls", "inst", "x", "z")}
    for key, value in (
        ("albedo", (0, 0, 0)),
        ("temp", 0.0),
        ("emit", (0, 0, 0)),
        ("grain", 0.0),
        ("cls", 0),
        ("inst", 0),
        ("x", 0.0),
        ("z", 0.0),
    ):
        rows[key].append(value)
    instances: list[_Instance] = []
    for sprite in sprites:
        inst = 0
        if sprite.instance:
            instances.append(_Instance(sprite.cls, _extremes(sprite)))
            inst = len(instances)
        for part in sprite.parts:
            rows["albedo"].append(part.mat.albedo)
            rows["temp"].append(part.mat.temp)
            rows["emit"].append(part.mat.emit)
            rows["grain"].append(part.mat.grain)
            rows["cls"].append(sprite.cls)
            rows["inst"].append(inst)
            rows["x"].append(sprite.x)
            rows["z"].append(sprite.z)
            _draw(pid, part, len(rows["temp"]) - 1)
    lut = {k: np.asarray(v, dtype=np.int64 if k in ("cls", "inst") else np.float32) for k, v in rows.items()}
    return pid, lut, instances


def _extremes(sprite: Sprite) -> np.ndarray:
    """Top, bottom, left and right points of the full (unoccluded, unclipped) silhouette, drawn alone on a
    canvas around the sprite; ties go to the middle pixel of the extreme row or column."""
    pts = np.concatenate([p.pts for p in sprite.parts])
    pad = max(p.stroke for p in sprite.parts) + 2
    x0, y0 = np.floor(pts.min(0) - pad)
    x1, y1 = np.ceil(pts.max(0) + pad)
    canvas = np.zeros((int(y1 - y0) + 1, int(x1 - x0) + 1), dtype=np.uint8)
    for part in sprite.parts:
        _draw(canvas, part, 1, (x0, y0))
    ys, xs = np.nonzero(canvas)
    if len(ys) == 0:
        cy, cx = canvas.shape[0] // 2, canvas.shape[1] // 2
        ys, xs = np.array([cy]), np.array([cx])
    out = []
    for coord, other, pick in (
        (ys, xs, ys.min()),
        (ys, xs, ys.max()),
        (xs, ys, xs.min()),
        (xs, ys, xs.max()),
    ):
        sel = np.sort(other[coord == pick])
        mid = sel[len(sel) // 2]
        out.append((mid, pick) if coord is ys else (pick, mid))
    return np.asarray(out, dtype=np.float64) + np.array([x0 + 0.5, y0 + 0.5])


def _annotate(instances: list[_Instance], inst: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of the visible pixels of every instance that shows at least one pixel, with its keypoints:
    visibility 2 where the point is seen, 1 where occluded, 0 (and x = y = 0) outside the image."""
    n = len(instances)
    ys, xs = np.nonzero(inst)
    ids = inst[ys, xs] - 1
    lo_x, lo_y = np.full(n, w), np.full(n, h)
    hi_x, hi_y = np.full(n, -1), np.full(n, -1)
    np.minimum.at(lo_x, ids, xs)
    np.minimum.at(lo_y, ids, ys)
    np.maximum.at(hi_x, ids, xs)
    np.maximum.at(hi_y, ids, ys)
    boxes, kps = [], []
    for i, item in enumerate(instances):
        if hi_x[i] < 0:
            continue
        boxes.append((item.cls, lo_x[i], lo_y[i], hi_x[i] + 1, hi_y[i] + 1))
        row = []
        for x, y in item.extremes:
            c, r = int(np.floor(x)), int(np.floor(y))
            if 0 <= c < w and 0 <= r < h:
                row.append((x, y, 2.0 if inst[r, c] == i + 1 else 1.0))
            else:
                row.append((0.0, 0.0, 0.0))
        kps.append(row)
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 5), np.asarray(kps, dtype=np.float32).reshape(-1, 4, 3)


def _shadow_map(sprites: list[Sprite], h: int, w: int) -> np.ndarray:
    """1 where a sprite's shadow falls on the ground (sun blocked), else 0; softened by one pixel."""
    m = np.zeros((h, w), dtype=np.float32)
    for sp in sprites:
        for poly in sp.shadows:
            pts = np.round((poly - 0.5) * (1 << SHIFT)).astype(np.int32)
            cv2.fillPoly(m, [pts], 1.0, cv2.LINE_8, SHIFT)
    return cv2.GaussianBlur(m, (3, 3), 0)


def _sky_gradient(scene: Scene, power: float) -> np.ndarray:
    """(H, 1) weight from 0 at the horizon to 1 at 60 % of the image height above it."""
    cam = scene.cam
    rows = np.arange(cam.height, dtype=np.float32)[:, None] + np.float32(0.5)
    return np.clip((np.float32(cam.horizon) - rows) / np.float32(0.6 * cam.height), 0.0, 1.0) ** np.float32(power)


def _sky(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Sky radiance of the rows above the ground (R, W, 3): horizon-to-zenith gradient, clouds by day."""
    cam, clim = scene.cam, scene.clim
    r0 = cam.first_ground_row
    t = _sky_gradient(scene, 0.6)[:r0, :, None]
    sky = np.asarray(clim.sky_horizon, dtype=np.float32) * (1 - t) + np.asarray(clim.sky_zenith, dtype=np.float32) * t
    clouds = cv2.resize(rng.random((6, 8), dtype=np.float32), (cam.width, cam.height), interpolation=cv2.INTER_CUBIC)
    cover = np.clip(clouds[:r0] * 1.6 - 0.7, 0.0, 1.0)[..., None] * np.float32(0.0 if clim.night else 0.7)
    grey = np.asarray(clim.sky_zenith if clim.overcast else (0.85, 0.86, 0.88), dtype=np.float32)
    return sky * (1 - cover) + grey * cover


def _sky_temp(scene: Scene) -> np.ndarray:
    """(H, W) apparent sky temperature: coldest at the zenith, near air temperature at the horizon (the
    longer path through warm air)."""
    clim = scene.clim
    t = _sky_gradient(scene, 0.5)
    return np.broadcast_to(
        np.float32(clim.t_sky_horizon) * (1 - t) + np.float32(clim.t_sky) * t,
        (scene.cam.height, scene.cam.width),
    )


def _illuminance(
    scene: Scene,
    cfg: SceneConfig,
    shadow: np.ndarray,
    wx: np.ndarray,
    wy: np.ndarray,
    wz: np.ndarray,
    lights: list[Light],
) -> np.ndarray:
    """(H, W, 3) illuminance as a fraction of full daylight at each visible surface point.

    Day: skylight plus sunlight where no shadow falls. Night: ambient light plus street lamps (point
    sources, inverse-square law, normalised to ``power`` at the lamp's foot) and headlight pairs, modelled
    as forward beams widening with distance, with the low-beam cutoff above 0.8 m and inverse-square decay
    beyond 10 m; the camera car's own low beams are one of them.
    """
    clim = scene.clim
    f32 = np.float32
    if not clim.night:
        e = f32(clim.e_sky) + f32(clim.e_sun) * (1 - shadow)
        return np.repeat(e[..., None], 3, axis=2)
    e = np.full((*wx.shape, 3), clim.e_sky, dtype=f32)
    ego = Light(0.0, 0.65, 0.0, cfg.ego_headlights * 1.25, (1.0, 0.97, 0.9), beam=1)
    for lt in [*lights, ego]:
        if lt.power <= 0:
            continue
        if lt.beam == 0:
            d2 = (wx - f32(lt.x)) ** 2 + (wz - f32(lt.z)) ** 2 + (wy - f32(lt.y)) ** 2
            f = np.minimum(f32(lt.power * lt.y**2) / np.maximum(d2, f32(1e-3)), f32(4.0 * lt.power))
        else:
            ahead = f32(lt.beam) * (wz - f32(lt.z))
            spread = np.exp(-(((wx - f32(lt.x)) / (f32(0.3) * np.abs(ahead) + 1)) ** 2))
            cutoff = np.exp(-((np.maximum(wy - f32(0.8), 0) / (f32(0.02) * np.abs(ahead) + f32(0.2))) ** 2))
            f = np.where(ahead > 0.3, f32(lt.power) * spread * cutoff / (1 + (ahead / f32(10)) ** 2), f32(0))
        e += f[..., None] * np.asarray(lt.colour, dtype=f32)
    return e


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; large sigmas run on a downsampled copy (the result is smooth anyway)."""
    h, w = img.shape[:2]
    step = max(int(sigma / 3), 1)
    if step == 1:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    small = cv2.resize(img, (max(w // step, 1), max(h // step, 1)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / step)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _visible(
    scene: Scene,
    cfg: SceneConfig,
    rng: np.random.Generator,
    alb: np.ndarray,
    grain: np.ndarray,
    emit: np.ndarray,
    shadow: np.ndarray,
    sky: np.ndarray,
    wx: np.ndarray,
    wy: np.ndarray,
    wz: np.ndarray,
    lights: list[Light],
) -> np.ndarray:
    """Radiance -> haze -> glare (night) -> optics blur -> sensor (shot + read noise, gain) -> [0, 1]."""
    cam, clim = scene.cam, scene.clim
    h, w = cam.height, cam.width
    f32 = np.float32
    texture = 1 + grain[..., None] * rng.standard_normal((h, w, 1), dtype=f32)
    rad = alb * _illuminance(scene, cfg, shadow, wx, wy, wz, lights) * texture + emit
    t = np.exp(-wz / f32(clim.haze))[..., None]
    rad = rad * t + np.asarray(clim.sky_horizon, dtype=f32) * (1 - t)
    r0 = cam.first_ground_row
    rad[:r0][sky[:r0]] = _sky(scene, rng)[sky[:r0]]
    if clim.night and cfg.glare_strength > 0:
        veil = sum(f32(k) * _blur(emit, s * w) for k, s in ((0.3, 0.004), (0.05, 0.015), (0.012, 0.05)))
        rad += f32(cfg.glare_strength) * veil
    rad = cv2.GaussianBlur(rad, (0, 0), 0.5)
    gain = cfg.night_gain if clim.night else 1.0
    electrons = np.clip(rad, 0, 4) * f32(cfg.vis_full_well)
    noise = np.sqrt(electrons + f32(cfg.vis_read_noise**2)) * rng.standard_normal(rad.shape, dtype=f32)
    return np.clip(f32(gain / cfg.vis_full_well) * (electrons + noise), 0, 1)


def _agc(temp: np.ndarray) -> np.ndarray:
    """Automatic gain control of a thermal camera, to [0.02, 0.98]: 40 % linear stretch between the 1st and
    99.9th percentile (at least 20 K wide), 60 % plateau histogram equalisation (histogram clipped at 3 %
    of the pixels per bin, so that large uniform areas such as the sky do not take the whole range), the
    scheme of the "plateau equalisation" AGC of uncooled automotive cores."""
    lo, hi = np.percentile(temp, (1.0, 99.9))
    hi = max(hi, lo + 20.0)
    hist, edges = np.histogram(temp, bins=128, range=(lo, hi))
    hist = np.minimum(hist, 0.03 * temp.size).astype(np.float64)
    cdf = np.concatenate(([0.0], np.cumsum(hist))) / max(hist.sum(), 1.0)
    linear = np.clip((temp - lo) / (hi - lo), 0, 1)
    equal = np.interp(temp, edges, cdf).astype(np.float32)
    return (0.02 + 0.96 * (0.4 * linear + 0.6 * equal)).astype(np.float32)


def _infrared(
    scene: Scene,
    cfg: SceneConfig,
    rng: np.random.Generator,
    temp: np.ndarray,
    sky: np.ndarray,
    wz: np.ndarray,
) -> np.ndarray:
    """Temperature -> haze -> AGC -> sensor resolution, optics blur, temporal and column noise -> upsample."""
    cam, clim = scene.cam, scene.clim
    h, w = cam.height, cam.width
    t = np.exp(-wz / np.float32(3.0 * clim.haze))
    temp = np.where(sky, temp, temp * t + np.float32(clim.t_sky_horizon) * (1 - t))
    v = _agc(temp)
    sh, sw = max(round(h * cfg.ir_resolution), 2), max(round(w * cfg.ir_resolution), 2)
    small = cv2.resize(v, (sw, sh), interpolation=cv2.INTER_AREA)
    if cfg.ir_blur > 0:
        small = cv2.GaussianBlur(small, (0, 0), cfg.ir_blur)
    small += np.float32(cfg.ir_noise) * rng.standard_normal((sh, sw), dtype=np.float32)
    small += np.float32(cfg.ir_column_noise) * rng.standard_normal((1, sw), dtype=np.float32)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)
