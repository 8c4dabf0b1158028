"""Objects of a road scene as flat sprites: polygons and strokes with a material each, at one distance.

An upright object standing at ground point (X, Z) is drawn on the plane facing the camera at that
distance (a billboard): a local point (a, b) metres (a to the right, b up) lands at pixel
(x_c + s a, y_g - s b) with s = focal / Z px per metre, so size and height follow perspective. Shadows
are polygons on the ground. Car, person, bike and cone shapes use typical dimensions (car 1.7-1.9 m wide,
adult 1.55-1.9 m, bicycle wheel 0.68 m, cone 0.45-0.75 m).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from taskfuse.data.synthetic.geometry import Camera
from taskfuse.data.synthetic.materials import (
    BIKE_PAINT,
    CAR_PAINT,
    CLOTHES,
    CONE_ORANGE,
    FACADE,
    HAIR,
    SKIN,
    Climate,
    Colour,
    Material,
    lum,
    pick,
)

CAR, PERSON, BIKE, GUARDRAIL, CONE = 1, 2, 3, 6, 7


@dataclass
class Part:
    """One polygon (or polyline stroke of ``stroke`` px) in pixel coordinates, with its material."""

    pts: np.ndarray
    mat: Material
    stroke: float = 0.0
    closed: bool = True


@dataclass(frozen=True)
class Light:
    """A light source at world point (x, y, z): ``beam`` 0 shines all round (street lamp), +1 / -1 is a
    headlight pair pointing away from / towards the camera."""

    x: float
    y: float
    z: float
    power: float
    colour: Colour
    beam: int = 0


@dataclass
class Sprite:
    """Parts drawn in order at distance ``z``; ``cls`` is the MSRS label of every part (0 = clutter)."""

    cls: int
    x: float
    z: float
    parts: list[Part] = field(default_factory=list)
    shadows: list[np.ndarray] = field(default_factory=list)
    lights: list[Light] = field(default_factory=list)
    instance: bool = False


class Billboard:
    """Local metres on the plane facing the camera at ground point (x, z) -> pixels."""

    def __init__(self, cam: Camera, x: float, z: float, flip: bool = False) -> None:
        self.cam = cam
        self.scale = cam.focal / z
        self.cx, self.cy = cam.project(np.float64(x), np.float64(z))
        self.sign = -1.0 if flip else 1.0

    def pts(self, local: list[tuple[float, float]] | np.ndarray) -> np.ndarray:
        a = np.asarray(local, dtype=np.float64)
        return np.stack((self.cx + self.sign * self.scale * a[:, 0], self.cy - self.scale * a[:, 1]), axis=1)

    def rect(self, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
        return self.pts([(a0, b0), (a1, b0), (a1, b1), (a0, b1)])

    def circle(self, a: float, b: float, r: float, n: int = 16) -> np.ndarray:
        t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
        return self.pts(np.stack((a + r * np.cos(t), b + r * np.sin(t)), axis=1))

    def px(self, metres: float) -> float:
        return max(self.scale * metres, 1.0)

    def ground_hull(
        self, x0: float, x1: float, z0: float, z1: float, height: float, sun: tuple[float, float]
    ) -> np.ndarray:
        """Shadow of a box standing on [x0, x1] x [z0, z1]: hull of its base and its top moved by the sun."""
        xs = np.array([x0, x1, x1, x0], dtype=np.float64)
        zs = np.array([z0, z0, z1, z1], dtype=np.float64)
        xs = np.concatenate((xs, xs + sun[0] * height))
        zs = np.concatenate((zs, zs + sun[1] * height))
        return _hull(self.cam.project(xs, zs))


def _hull(pts: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of (N, 2) points."""
    p = sorted(map(tuple, pts))

    def half(seq) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for q in seq:
            while (
                len(out) >= 2
                and ((out[-1][0] - out[-2][0]) * (q[1] - out[-2][1]) - (out[-1][1] - out[-2][1]) * (q[0] - out[-2][0]))
                <= 0
            ):
                out.pop()
            out.append(q)
        return out

    lower, upper = half(p), half(reversed(p))
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def car(
    cam: Camera,
    rng: np.random.Generator,
    clim: Climate,
    x: float,
    z: float,
    view: str,
    running: bool,
    jitter: float,
) -> Sprite:
    """A car seen from the rear (``view='rear'``, tail lights) or the front (headlights, hot grille).

    Apparent temperatures: sun-warmed paint (dark paint warmer), glass mirroring the sky (cold), and when
    ``running`` hot tyres, exhaust (rear) or radiator grille (front), and a warm underbody.
    """
    w = rng.uniform(1.7, 1.9) * (1 + jitter * rng.uniform(-1, 1))
    h = rng.uniform(1.4, 1.75) * (1 + jitter * rng.uniform(-1, 1))
    length = rng.uniform(4.0, 4.8)
    paint = pick(rng, CAR_PAINT)
    heat = rng.uniform(0.7, 1.3)
    belt = h * rng.uniform(0.52, 0.6)
    bb = Billboard(cam, x, z)
    air = clim.t_air
    body_t = clim.surface(paint, (6.0 if view == "front" else 2.0) * heat if running else 0.0)
    warm = 12.0 * heat if running else 0.0
    glass = Material((0.05, 0.06, 0.08), clim.apparent(clim.surface(0.3), 0.8), grain=0.01)
    tyre = Material((0.03, 0.03, 0.03), clim.surface(0.03, 1.5 * warm), grain=0.02)
    trim = Material((0.04, 0.04, 0.045), clim.surface(0.04, 0.8 * warm), grain=0.02)
    body = Material(paint, body_t, grain=0.015)
    roof = Material(tuple(min(c * 1.12 + 0.02, 1.0) for c in paint), body_t, grain=0.015)
    s = Sprite(CAR, x, z, instance=True)
    hw = w / 2
    for sgn in (-1.0, 1.0):
        a0, a1 = sorted((sgn * (hw - 0.04), sgn * (hw - 0.32)))
        s.parts.append(Part(bb.rect(a0, a1, 0.0, 0.44), tyre))
    s.parts.append(Part(bb.rect(-hw + 0.3, hw - 0.3, 0.06, 0.3), trim))
    s.parts.append(
        Part(
            bb.pts(
                [
                    (-hw, 0.26),
                    (hw, 0.26),
                    (hw, belt - 0.06),
                    (hw - 0.06, belt),
                    (-hw + 0.06, belt),
                    (-hw, belt - 0.06),
                ]
            ),
            body,
        )
    )
    s.parts.append(Part(bb.rect(-hw, hw, 0.24, 0.42), trim))
    cab = [
        (-0.46 * w, belt),
        (0.46 * w, belt),
        (0.37 * w, h - 0.02),
        (0.33 * w, h),
        (-0.33 * w, h),
        (-0.37 * w, h - 0.02),
    ]
    s.parts.append(Part(bb.pts(cab), roof))
    top = h - 0.07
    s.parts.append(
        Part(
            bb.pts([(-0.42 * w, belt + 0.05), (0.42 * w, belt + 0.05), (0.34 * w, top), (-0.34 * w, top)]),
            glass,
        )
    )
    plate = Material((0.85, 0.85, 0.8), clim.surface(0.85), grain=0.01)
    on = clim.night and running
    if view == "rear":
        s.parts.append(Part(bb.rect(-0.26, 0.26, 0.3, 0.42), plate))
        red = Material((0.5, 0.05, 0.04), clim.surface(0.15), emit=(2.5, 0.12, 0.06) if on else (0, 0, 0))
        for sgn in (-1.0, 1.0):
            a0, a1 = sorted((sgn * (hw - 0.03), sgn * (hw - 0.32)))
            s.parts.append(Part(bb.rect(a0, a1, belt - 0.2, belt - 0.05), red))
        if running:
            pipe = Material((0.02, 0.02, 0.02), air + 45.0 * heat, grain=0.0)
            s.parts.append(Part(bb.circle(-0.3 * w, 0.27, 0.05, 8), pipe))
        power = rng.uniform(0.06, 0.12)
        s.lights.append(Light(x, 0.65, z, power if on else 0.0, (1.0, 0.95, 0.85), beam=1))
    else:
        s.parts.append(
            Part(
                bb.rect(-0.3 * w, 0.3 * w, 0.45, belt - 0.08),
                Material((0.05, 0.05, 0.05), clim.surface(0.05, 2.0 * warm), grain=0.02),
            )
        )
        s.parts.append(Part(bb.rect(-0.26, 0.26, 0.27, 0.39), plate))
        lamp = Material(
            (0.75, 0.75, 0.72),
            clim.surface(0.7, 0.6 * warm),
            emit=(14.0, 13.0, 11.0) if on else (0, 0, 0),
            grain=0.0,
        )
        for sgn in (-1.0, 1.0):
            s.parts.append(Part(bb.circle(sgn * (hw - 0.22), belt - 0.14, 0.11, 10), lamp))
        power = rng.uniform(0.08, 0.15)
        s.lights.append(Light(x, 0.65, z, power if on else 0.0, (1.0, 0.97, 0.9), beam=-1))
    s.shadows.append(bb.ground_hull(x - hw, x + hw, z, z + length, 0.8 * h, clim.sun_shadow))
    return s


def person(
    cam: Camera, rng: np.random.Generator, clim: Climate, x: float, z: float, side_view: bool, jitter: float
) -> Sprite:
    """A standing or walking pedestrian; skin at ~33 C, clothing between skin and air (its insulation)."""
    child = rng.random() < 0.1
    h = (rng.uniform(1.0, 1.35) if child else rng.uniform(1.55, 1.9)) * (1 + jitter * rng.uniform(-1, 1))
    top, legs, skin_c, hair_c = pick(rng, CLOTHES), pick(rng, CLOTHES), pick(rng, SKIN), pick(rng, HAIR)
    stride, swing, flip = rng.uniform(0.1, 0.4), rng.uniform(-0.3, 0.3), rng.random() < 0.5
    skin_t = rng.uniform(31.0, 34.0)
    insulation = rng.uniform(0.35, 0.55)
    cloth_t = clim.t_air + insulation * (skin_t - clim.t_air)
    bb = Billboard(cam, x, z, flip=flip)
    shirt = Material(top, cloth_t + (1 - lum(top)) * clim.sun_heat * 0.5, grain=0.05)
    trousers = Material(legs, cloth_t - 1.0 + (1 - lum(legs)) * clim.sun_heat * 0.5, grain=0.05)
    skin = Material(skin_c, skin_t, grain=0.02)
    hair = Material(hair_c, 0.5 * (skin_t + cloth_t), grain=0.03)
    s = Sprite(PERSON, x, z, instance=True)
    hip, shoulder, head_r = 0.5 * h, 0.81 * h, 0.064 * h
    if side_view:
        dx = 0.5 * h * np.sin(stride)
        for foot in (-dx, dx):
            s.parts.append(Part(bb.pts([(0.0, hip), (foot, 0.04 * h)]), trousers, stroke=bb.px(0.08 * h)))
        torso = [(-0.07 * h, hip), (0.06 * h, hip), (0.08 * h, shoulder), (-0.07 * h, shoulder)]
        arms = [(0.0, shoulder - 0.02 * h, swing * 0.35 * h, 0.47 * h)]
    else:
        for sgn in (-1.0, 1.0):
            s.parts.append(
                Part(
                    bb.pts([(sgn * 0.06 * h, hip), (sgn * 0.075 * h, 0.04 * h)]),
                    trousers,
                    stroke=bb.px(0.075 * h),
                )
            )
        torso = [(-0.1 * h, hip), (0.1 * h, hip), (0.13 * h, shoulder), (-0.13 * h, shoulder)]
        arms = [(sgn * 0.15 * h, shoulder - 0.02 * h, sgn * (0.17 + 0.03 * swing) * h, 0.47 * h) for sgn in (-1.0, 1.0)]
    s.parts.append(
        Part(
            bb.pts([(-0.05 * h, 0.0), (0.05 * h, 0.0), (0.05 * h, 0.04 * h), (-0.05 * h, 0.04 * h)]),
            Material((0.05, 0.05, 0.05), clim.surface(0.05), grain=0.02),
        )
    )
    s.parts.append(Part(bb.pts(torso), shirt))
    for a0, b0, a1, b1 in arms:
        s.parts.append(Part(bb.pts([(a0, b0), (a1, b1)]), shirt, stroke=bb.px(0.06 * h)))
        s.parts.append(Part(bb.circle(a1, b1, 0.03 * h, 8), skin))
    s.parts.append(Part(bb.rect(-0.025 * h, 0.025 * h, shoulder - 0.01 * h, 0.9 * h), skin))
    s.parts.append(Part(bb.circle(0.0, 0.93 * h, head_r), skin))
    s.parts.append(
        Part(
            bb.pts(
                [
                    (-head_r, 0.935 * h),
                    (-0.8 * head_r, 0.965 * h),
                    (0.0, 0.93 * h + head_r),
                    (0.8 * head_r, 0.965 * h),
                    (head_r, 0.935 * h),
                ]
            ),
            hair,
        )
    )
    s.shadows.append(bb.ground_hull(x - 0.15, x + 0.15, z - 0.1, z + 0.2, h, clim.sun_shadow))
    return s


def bike(
    cam: Camera, rng: np.random.Generator, clim: Climate, x: float, z: float, ridden: bool, jitter: float
) -> list[Sprite]:
    """A bicycle in side view (wheels as rings, frame as strokes) and, when ``ridden``, its rider as a
    separate person sprite drawn in front of it. The bicycle itself sits at air temperature (metal frame
    of low emissivity, unheated tyres); the rider is the heat source."""
    k = 1 + jitter * rng.uniform(-1, 1)
    paint, flip, crank = pick(rng, BIKE_PAINT), rng.random() < 0.5, rng.uniform(0, 2 * np.pi)
    rider_h = rng.uniform(1.6, 1.85)
    rider_top, rider_legs = pick(rng, CLOTHES), pick(rng, CLOTHES)
    skin_c, skin_t, insulation = pick(rng, SKIN), rng.uniform(31.0, 34.0), rng.uniform(0.35, 0.55)
    bb = Billboard(cam, x, z, flip=flip)
    r, base = 0.34 * k, 0.525 * k
    rear, front = (-base, r), (base, r)
    bracket, seat, head, bar = (
        (-0.05 * k, 0.3 * k),
        (-0.22 * k, 0.88 * k),
        (0.36 * k, 0.86 * k),
        (0.4 * k, 1.0 * k),
    )
    frame = Material(paint, clim.apparent(clim.surface(paint), 0.4), grain=0.02)
    tyre = Material((0.04, 0.04, 0.04), clim.surface(0.04, 2.0 if ridden else 0.0), grain=0.02)
    s = Sprite(BIKE, x, z, instance=True)
    thick = bb.px(0.05 * k)
    for hub in (rear, front):
        s.parts.append(Part(bb.circle(*hub, r - 0.025 * k, 20), tyre, stroke=thick))
    for a, b in (
        (rear, bracket),
        (bracket, seat),
        (seat, rear),
        (seat, head),
        (bracket, head),
        (head, front),
        (head, bar),
    ):
        s.parts.append(Part(bb.pts([a, b]), frame, stroke=bb.px(0.035 * k), closed=False))
    s.parts.append(
        Part(
            bb.pts([(seat[0] - 0.1 * k, seat[1] + 0.03), (seat[0] + 0.08 * k, seat[1] + 0.03)]),
            Material((0.03, 0.03, 0.03), clim.surface(0.03)),
            stroke=bb.px(0.05 * k),
            closed=False,
        )
    )
    s.shadows.append(bb.ground_hull(x - base, x + base, z - 0.05, z + 0.05, 1.0, clim.sun_shadow))
    if not ridden:
        return [s]
    rider = Sprite(PERSON, x, z - 0.05, instance=True)
    rb = Billboard(cam, x, z - 0.05, flip=flip)
    q = rider_h / 1.75
    cloth_t = clim.t_air + insulation * (skin_t - clim.t_air)
    shirt = Material(rider_top, cloth_t + (1 - lum(rider_top)) * clim.sun_heat * 0.5, grain=0.05)
    trousers = Material(rider_legs, cloth_t - 1.0 + (1 - lum(rider_legs)) * clim.sun_heat * 0.5, grain=0.05)
    skin = Material(skin_c, skin_t, grain=0.02)
    hip = (seat[0], seat[1] + 0.08)
    shoulder = (hip[0] + 0.25 * q, hip[1] + 0.5 * q)
    for phase in (crank, crank + np.pi):
        pedal = (bracket[0] + 0.17 * np.cos(phase), bracket[1] + 0.17 * np.sin(phase))
        mid = ((hip[0] + pedal[0]) / 2 + 0.16 * q, (hip[1] + pedal[1]) / 2 + 0.06 * q)
        rider.parts.append(Part(rb.pts([hip, mid, pedal]), trousers, stroke=rb.px(0.11 * q), closed=False))
    rider.parts.append(Part(rb.pts([hip, shoulder]), shirt, stroke=rb.px(0.2 * q), closed=False))
    rider.parts.append(Part(rb.pts([shoulder, bar]), shirt, stroke=rb.px(0.08 * q), closed=False))
    rider.parts.append(Part(rb.circle(shoulder[0] + 0.06 * q, shoulder[1] + 0.2 * q, 0.11 * q), skin))
    return [s, rider]


def cone(cam: Camera, rng: np.random.Generator, clim: Climate, x: float, z: float, jitter: float) -> Sprite:
    """A traffic cone: orange plastic with a white retro-reflective band. A thin, ventilated plastic shell
    with no heat source: it warms less than the road in the sun and cools below air at night."""
    h = rng.uniform(0.45, 0.75) * (1 + jitter * rng.uniform(-1, 1))
    bb = Billboard(cam, x, z)
    base_w, top_w = 0.27 * h, 0.025
    cool = -1.5 if clim.night else 0.0
    orange = Material(CONE_ORANGE, clim.surface(CONE_ORANGE, cool) - 0.3 * clim.sun_heat, grain=0.02)
    white = Material((0.85, 0.85, 0.85), clim.surface(0.85, cool), grain=0.02)
    s = Sprite(CONE, x, z, instance=True)
    s.parts.append(
        Part(
            bb.rect(-1.3 * base_w, 1.3 * base_w, 0.0, 0.04),
            Material((0.05, 0.05, 0.05), clim.surface(0.05, cool)),
        )
    )

    def half_w(b: float) -> float:
        return base_w - (base_w - top_w) * (b - 0.04) / (h - 0.04)

    s.parts.append(Part(bb.pts([(-base_w, 0.04), (base_w, 0.04), (top_w, h), (-top_w, h)]), orange))
    b0, b1 = 0.5 * h, 0.68 * h
    s.parts.append(Part(bb.pts([(-half_w(b0), b0), (half_w(b0), b0), (half_w(b1), b1), (-half_w(b1), b1)]), white))
    s.shadows.append(bb.ground_hull(x - base_w, x + base_w, z - 0.1, z + 0.1, 0.6 * h, clim.sun_shadow))
    return s


def street_lamp(cam: Camera, rng: np.random.Generator, clim: Climate, x: float, z: float, reach: float) -> Sprite:
    """A lamp post at (x, z) whose arm reaches ``reach`` metres (signed, towards the road); the head is a
    light source at night (hot sodium or LED housing in the infrared)."""
    height = rng.uniform(7.0, 9.5)
    bb = Billboard(cam, x, z)
    metal = Material((0.38, 0.39, 0.4), clim.apparent(clim.surface(0.38), 0.35), grain=0.02)
    on = clim.night
    head = Material(
        (0.6, 0.6, 0.58),
        clim.t_air + (40.0 if on else 0.5 * clim.sun_heat),
        emit=tuple(12.0 * c for c in clim.lamp_colour) if on else (0, 0, 0),
        grain=0.0,
    )
    s = Sprite(0, x, z)
    s.parts.append(Part(bb.pts([(0.0, 0.0), (0.0, height)]), metal, stroke=bb.px(0.16), closed=False))
    s.parts.append(
        Part(
            bb.pts([(0.0, height), (0.6 * reach, height + 0.35), (reach, height + 0.3)]),
            metal,
            stroke=bb.px(0.1),
            closed=False,
        )
    )
    s.parts.append(Part(bb.rect(reach - 0.3, reach + 0.3, height + 0.12, height + 0.3), head))
    s.lights.append(Light(x + reach, height, z, clim.lamp_power, clim.lamp_colour))
    s.shadows.append(bb.ground_hull(x - 0.08, x + 0.08, z - 0.08, z + 0.08, height, clim.sun_shadow))
    return s


def tree(cam: Camera, rng: np.random.Generator, clim: Climate, x: float, z: float) -> Sprite:
    """A roadside tree: trunk and a canopy of overlapping discs; leaves stay near air temperature
    (transpiration)."""
    trunk_h, crown = rng.uniform(2.0, 3.5), rng.uniform(1.5, 3.0)
    greens = [(0.08 * rng.uniform(0.7, 1.3), 0.16 * rng.uniform(0.7, 1.3), 0.05) for _ in range(4)]
    bb = Billboard(cam, x, z)
    bark = Material((0.2, 0.14, 0.09), clim.surface(0.2) - 0.3 * clim.sun_heat, grain=0.06)
    s = Sprite(0, x, z)
    s.parts.append(Part(bb.pts([(0.0, 0.0), (0.0, trunk_h + crown)]), bark, stroke=bb.px(0.3)))
    for g in greens:
        a, b, r = (
            rng.uniform(-0.6, 0.6) * crown,
            trunk_h + crown + rng.uniform(-0.5, 0.6) * crown,
            crown * 0.75,
        )
        leaf_t = clim.t_air + 0.12 * clim.sun_heat + rng.uniform(-1.0, 0.5) - (1.5 if clim.night else 0.0)
        s.parts.append(Part(bb.circle(a, b, r, 14), Material(g, leaf_t, grain=0.12)))
    top = trunk_h + 2 * crown
    s.shadows.append(bb.ground_hull(x - crown, x + crown, z - crown, z + crown, top * 0.8, clim.sun_shadow))
    return s


def building(
    cam: Camera,
    rng: np.random.Generator,
    clim: Climate,
    x: float,
    z0: float,
    z1: float,
    side: int,
    depth: float,
) -> Sprite:
    """A block with its long facade on the plane X = x from z0 to z1 and its near end wall facing the
    camera; windows reflect the sky by day and some glow at night. Walls release the day's heat at night."""
    height = rng.uniform(5.0, 20.0)
    colour = pick(rng, FACADE)
    floors, bays = max(int(height / 3.2), 1), max(int((z1 - z0) / 3.5), 1)
    lit = rng.random((floors, bays)) < 0.3
    wall_t = clim.surface(colour, 3.0 if clim.night else 0.0)
    wall = Material(colour, wall_t, grain=0.05)
    shade = Material(tuple(c * 0.7 for c in colour), wall_t, grain=0.05)
    dark = Material((0.07, 0.08, 0.1), clim.apparent(wall_t, 0.8), grain=0.02)
    glow = Material((0.3, 0.25, 0.15), wall_t + 2.0, emit=(0.5, 0.4, 0.22) if clim.night else (0, 0, 0), grain=0.02)
    s = Sprite(0, x, z0)
    far_x = x + side * depth
    corners = cam.project(np.array([x, x, x, x]), np.array([z0, z1, z1, z0]), np.array([0, 0, height, height]))
    end = cam.project(np.array([x, far_x, far_x, x]), np.array([z0, z0, z0, z0]), np.array([0, 0, height, height]))
    s.parts.append(Part(corners, wall))
    s.parts.append(Part(end, shade))
    fz = (z1 - z0) / bays
    for j in range(bays):
        za, zb = z0 + (j + 0.3) * fz, z0 + (j + 0.7) * fz
        if cam.focal * abs(x) * (1 / za - 1 / zb) < 1.5:
            break
        for i in range(floors):
            ya = i * 3.2 + 1.0
            quad = cam.project(
                np.array([x, x, x, x]), np.array([za, zb, zb, za]), np.array([ya, ya, ya + 1.4, ya + 1.4])
            )
            s.parts.append(Part(quad, glow if lit[i, j] else dark))
    return s


def skyline(cam: Camera, rng: np.random.Generator, clim: Climate, z: float) -> Sprite:
    """Distant trees and roofs along the horizon, ``z`` metres away: one jagged polygon."""
    n = 24
    xs = np.linspace(-0.1, 1.1, n) * cam.width
    heights = np.clip(rng.normal(8.0, 5.0, n), 0.0, 30.0)
    tops = cam.horizon - cam.focal * heights / z
    bottom = cam.horizon + cam.focal * cam.cam_height / z
    pts = np.concatenate((np.stack((xs, tops), 1), [[xs[-1], bottom], [xs[0], bottom]]))
    mat = Material((0.25, 0.3, 0.25), clim.t_air - (1.0 if clim.night else -0.1 * clim.sun_heat), grain=0.04)
    s = Sprite(0, 0.0, z)
    s.parts.append(Part(pts, mat))
    return s


def guardrail(cam: Camera, clim: Climate, xs: np.ndarray, zs: np.ndarray) -> list[Sprite]:
    """Galvanised W-beam (0.45-0.75 m high) on posts at the points (xs, zs), one sprite per span so that
    it interleaves with the objects in depth order. Bare zinc has emissivity ~0.3: it mirrors the cold sky
    and looks colder than the road."""
    steel = Material((0.56, 0.57, 0.58), clim.apparent(clim.surface(0.5), 0.3), grain=0.03)
    post = Material((0.4, 0.4, 0.42), clim.apparent(clim.surface(0.4), 0.3), grain=0.03)
    out = []
    for i in range(len(zs) - 1):
        x0, x1, z0, z1 = xs[i], xs[i + 1], zs[i], zs[i + 1]
        s = Sprite(GUARDRAIL, x0, 0.5 * (z0 + z1))
        beam = cam.project(np.array([x0, x1, x1, x0]), np.array([z0, z1, z1, z0]), np.array([0.45, 0.45, 0.75, 0.75]))
        foot = cam.project(np.array([x0, x0]), np.array([z0, z0]), np.array([0.0, 0.72]))
        s.parts.append(Part(foot, post, stroke=max(cam.focal * 0.1 / z0, 1.0), closed=False))
        s.parts.append(Part(beam, steel))
        out.append(s)
    return out
