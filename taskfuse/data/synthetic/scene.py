"""Random layout of one road scene: camera, road and markings, weather, and the objects on and by the road.

Each scene draws from independent streams spawned from its seed (``numpy.random.SeedSequence``): one for
day/night, one for the layout, one for the weather, one for sensor noise. The layout stream never depends
on the time of day, so ``render_scene(seed, night=True)`` and ``night=False`` show the same street.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taskfuse.data.synthetic import objects
from taskfuse.data.synthetic.config import SceneConfig
from taskfuse.data.synthetic.geometry import SHOULDER, Camera, Road
from taskfuse.data.synthetic.materials import KERB_PAINT, Climate, Colour, sample_climate
from taskfuse.data.synthetic.objects import Sprite

SKYLINE, BUILDINGS, TREES, STREET = range(4)
"""Drawing layers, back to front; within a layer sprites are drawn far to near (painter's algorithm)."""


@dataclass(frozen=True)
class Marks:
    """Paint on the road: lane lines, kerb marking (class curve), speed bump, stop line, zebra crossing."""

    dash_period: float
    dash_length: float
    dash_phase: float
    edge_lines: bool
    wear: float
    """Paint coverage left by wear, in (0, 1]."""
    kerb: tuple[tuple[Colour, Colour] | None, tuple[Colour, Colour] | None]
    kerb_width: float
    kerb_period: float
    bump: tuple[float, float] | None
    """(distance, depth) of the speed bump, metres."""
    stop: float | None
    zebra: float | None


@dataclass(frozen=True)
class Ground:
    """Albedo of the ground surfaces."""

    asphalt: Colour
    sidewalk: Colour
    shoulder: Colour
    terrain: Colour


@dataclass
class Scene:
    """Everything ``render`` needs to draw one scene."""

    cam: Camera
    road: Road
    marks: Marks
    ground: Ground
    clim: Climate
    sprites: list[tuple[int, int, Sprite]]
    """(layer, draw sequence, sprite)."""
    noise_seed: np.random.SeedSequence

    def ordered(self) -> list[Sprite]:
        """Sprites in painter's order: by layer, then far to near."""
        return [s for _, _, s in sorted(self.sprites, key=lambda t: (t[0], -t[2].z, t[1]))]


def sample_scene(seed: int, height: int, width: int, night: bool | None, cfg: SceneConfig) -> Scene:
    """Draw the whole scene description for ``seed``; rendering it is deterministic apart from the
    sensor noise, which is drawn from ``noise_seed``."""
    s_night, s_layout, s_climate, s_noise = np.random.SeedSequence(seed).spawn(4)
    if night is None:
        night = _draw_night(s_night, cfg)
    rng = np.random.default_rng(s_layout)
    clim = sample_climate(np.random.default_rng(s_climate), night, cfg.night_ambient)
    cam = Camera(
        height=height,
        width=width,
        focal=width * rng.uniform(0.75, 1.0),
        cam_height=rng.uniform(1.2, 1.6),
        horizon=height * rng.uniform(0.36, 0.48),
        vp_x=width * (0.5 + rng.uniform(-0.06, 0.06)),
    )
    road, marks, ground = _road(rng, cfg)
    scene = Scene(cam, road, marks, ground, clim, [], s_noise)
    _Populator(scene, rng, cfg).run()
    return scene


def _draw_night(stream: np.random.SeedSequence, cfg: SceneConfig) -> bool:
    return bool(np.random.default_rng(stream).random() < cfg.night_fraction)


def is_night(seed: int, cfg: SceneConfig) -> bool:
    """Whether scene ``seed`` is a night scene, without building it."""
    return _draw_night(np.random.SeedSequence(seed).spawn(1)[0], cfg)


def _road(rng: np.random.Generator, cfg: SceneConfig) -> tuple[Road, Marks, Ground]:
    lanes = int(rng.choice([2, 3, 4], p=[0.45, 0.3, 0.25]))
    lane_width = rng.uniform(3.0, 3.7)
    oncoming = lanes // 2 if rng.random() < 0.8 else 0
    cam_lane = int(rng.integers(oncoming, lanes))
    jitter, bend, curvature = rng.uniform(-0.3, 0.3), rng.random() < 0.6, rng.uniform(-1.0, 1.0) / 250.0
    kerb_width = rng.uniform(0.15, 0.3)
    gutter = 0.1 + kerb_width + rng.uniform(0.35, 0.7)
    sidewalk = (rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0))
    guardrail = (bool(rng.random() < cfg.p_guardrail), bool(rng.random() < cfg.p_guardrail))
    half = lanes * lane_width / 2
    road = Road(
        lanes,
        lane_width,
        oncoming,
        -(-half + (cam_lane + 0.5) * lane_width + jitter),
        curvature if bend else 0.0,
        gutter,
        sidewalk,
        guardrail,
    )
    kerb = tuple(
        KERB_PAINT[int(rng.integers(len(KERB_PAINT)))] if rng.random() < cfg.p_curb else None for _ in range(2)
    )
    bump_z, bump_depth, has_bump = rng.uniform(8.0, 35.0), rng.uniform(0.5, 0.9), rng.random() < cfg.p_bump
    stop_z, has_stop = rng.uniform(6.0, 30.0), rng.random() < cfg.p_car_stop
    zebra_z, has_zebra = rng.uniform(8.0, 30.0), rng.random() < 0.25
    if has_bump and has_stop and abs(stop_z - bump_z) < 3.0:
        has_stop = False
    taken = [z for z, used in ((bump_z, has_bump), (stop_z, has_stop)) if used]
    if has_zebra and any(abs(zebra_z - z) < 5.0 for z in taken):
        has_zebra = False
    period = rng.uniform(8.0, 12.0)
    marks = Marks(
        dash_period=period,
        dash_length=rng.uniform(2.5, 4.0),
        dash_phase=rng.uniform(0.0, period),
        edge_lines=bool(rng.random() < 0.7),
        wear=rng.uniform(0.55, 1.0),
        kerb=kerb,
        kerb_width=kerb_width,
        kerb_period=rng.uniform(0.8, 2.0),
        bump=(bump_z, bump_depth) if has_bump else None,
        stop=stop_z if has_stop else None,
        zebra=zebra_z if has_zebra else None,
    )
    g = rng.uniform(0.1, 0.2)
    c = rng.uniform(0.3, 0.45)
    terrains = ((0.1, 0.17, 0.05), (0.3, 0.27, 0.15), (0.22, 0.18, 0.13))
    ground = Ground(
        asphalt=(g, g, g * 1.04),
        sidewalk=(c, c * 0.97, c * 0.92),
        shoulder=(0.3, 0.28, 0.25),
        terrain=terrains[int(rng.integers(3))],
    )
    return road, marks, ground


class _Populator:
    """Places objects without collisions: each keeps a ground footprint (u0, u1, z0, z1) in road coordinates
    and a new object overlapping one is redrawn (up to a few tries) or dropped."""

    def __init__(self, scene: Scene, rng: np.random.Generator, cfg: SceneConfig) -> None:
        self.scene, self.rng, self.cfg = scene, rng, cfg
        self.cam, self.road, self.clim = scene.cam, scene.road, scene.clim
        self.taken: list[tuple[float, float, float, float]] = []

    def add(self, layer: int, sprite: Sprite) -> None:
        self.scene.sprites.append((layer, len(self.scene.sprites), sprite))

    def free(self, u0: float, u1: float, z0: float, z1: float) -> bool:
        if any(u0 < b1 and b0 < u1 and z0 < d1 and c0 < z1 for b0, b1, c0, d1 in self.taken):
            return False
        self.taken.append((u0, u1, z0, z1))
        return True

    def distance(self) -> float:
        near, far = self.cfg.distance_range
        return float(np.exp(self.rng.uniform(np.log(near), np.log(far))))

    def count(self, key: str) -> int:
        lo, hi = getattr(self.cfg, key)
        return int(self.rng.integers(lo, hi + 1))

    def open_sides(self) -> list[int]:
        return [i for i in (0, 1) if not self.road.guardrail[i]]

    def run(self) -> None:
        self.add(SKYLINE, objects.skyline(self.cam, self.rng, self.clim, 350.0))
        for _ in range(self.count("cars")):
            self.car()
        for _ in range(self.count("persons")):
            self.person()
        for _ in range(self.count("bikes")):
            self.bike()
        self.cones(self.count("cones"))
        self.roadside()

    def car(self) -> None:
        road, rng = self.road, self.rng
        cam_lane = round((-road.offset + road.half) / road.lane_width - 0.5)
        for _ in range(8):
            parked, lane = rng.random() < 0.2, int(rng.integers(road.lanes))
            z, shift = self.distance(), rng.uniform(-0.3, 0.3)
            side = 1 if not road.guardrail[1] or road.guardrail[0] else 0
            if parked:
                u = (road.half - 1.1) * (1 if side else -1)
                lane = road.lanes - 1 if side else 0
            else:
                u = road.lane_centre(lane) + shift
            if lane == cam_lane and z < 7.0:
                continue
            if self.free(u - 1.0, u + 1.0, z - 0.5, z + 5.0):
                view = "front" if lane < road.oncoming else "rear"
                sprite = objects.car(
                    self.cam, rng, self.clim, road.world_x(u, z), z, view, not parked, self.cfg.size_jitter
                )
                self.add(STREET, sprite)
                return

    def person(self) -> None:
        road, rng = self.road, self.rng
        for _ in range(8):
            where, z, side, t = rng.random(), self.distance(), int(rng.integers(2)), rng.random()
            sides = self.open_sides()
            sign = 1 if side else -1
            if where < 0.25:
                u, side_view = (t * 2 - 1) * road.half, True
                if self.scene.marks.zebra is not None:
                    z = self.scene.marks.zebra + 1.5 * t
            elif where < 0.9 and sides:
                sign = 1 if sides[side % len(sides)] else -1
                width = road.sidewalk[1 if sign > 0 else 0]
                u, side_view = sign * (road.kerb + 0.3 + t * (width - 0.6)), rng.random() < 0.3
            else:
                u, side_view = sign * (road.half + 0.5 * road.gutter), False
            if self.free(u - 0.35, u + 0.35, z - 0.35, z + 0.35):
                sprite = objects.person(
                    self.cam, rng, self.clim, road.world_x(u, z), z, bool(side_view), self.cfg.size_jitter
                )
                self.add(STREET, sprite)
                return

    def bike(self) -> None:
        road, rng = self.road, self.rng
        for _ in range(8):
            ridden, z, side, t = rng.random() < 0.7, self.distance(), int(rng.integers(2)), rng.random()
            sides = self.open_sides()
            if ridden:
                u = (t * 2 - 1) * (road.half - 0.9)
            elif sides:
                sign = 1 if sides[side % len(sides)] else -1
                u = sign * (road.kerb + 0.6)
            else:
                continue
            if self.free(u - 0.95, u + 0.95, z - 0.4, z + 0.4):
                for sprite in objects.bike(
                    self.cam, rng, self.clim, road.world_x(u, z), z, ridden, self.cfg.size_jitter
                ):
                    self.add(STREET, sprite)
                return

    def cones(self, n: int) -> None:
        road, rng = self.road, self.rng
        boundary = int(rng.integers(road.lanes + 1))
        u = -road.half + boundary * road.lane_width
        u = float(np.clip(u, -road.half + 0.35, road.half - 0.35))
        z0, spacing = self.distance(), rng.uniform(1.5, 3.5)
        for i in range(n):
            z = z0 + i * spacing
            if self.free(u - 0.25, u + 0.25, z - 0.25, z + 0.25):
                self.add(
                    STREET,
                    objects.cone(self.cam, rng, self.clim, road.world_x(u, z), z, self.cfg.size_jitter),
                )

    def roadside(self) -> None:
        """Street lamps, trees and buildings (unlabelled clutter) and guardrails (class guardrail)."""
        road, rng, cam, clim = self.road, self.rng, self.cam, self.clim
        lamps, both, lamp_side = (
            rng.random() < self.cfg.p_street_lamps,
            rng.random() < 0.4,
            int(rng.integers(2)),
        )
        spacing = rng.uniform(25.0, 40.0)
        phase = rng.uniform(0.0, spacing)
        for side in (0, 1):
            sign = 1.0 if side else -1.0
            if lamps and (both or side == lamp_side):
                u = road.kerb + (SHOULDER - 0.3 if road.guardrail[side] else 0.4)
                for z in np.arange(phase, 150.0, spacing):
                    reach = -sign * rng.uniform(1.0, 2.0)
                    self.add(STREET, objects.street_lamp(cam, rng, clim, road.world_x(sign * u, z), z, reach))
            if road.guardrail[side]:
                z, step, posts = rng.uniform(0.5, 2.5), rng.uniform(2.0, 4.0), []
                while z < 120.0:
                    posts.append(z)
                    z += step * max(1.0, z / 15.0)
                zs = np.asarray(posts)
                xs = road.world_x(sign * (road.kerb + 0.9), zs)
                for sprite in objects.guardrail(cam, clim, np.asarray(xs), zs):
                    self.add(STREET, sprite)
            if rng.random() < 0.6:
                z = rng.uniform(2.0, 12.0)
                while z < 160.0:
                    u = road.verge(side) + rng.uniform(0.5, 3.0)
                    self.add(TREES, objects.tree(cam, rng, clim, road.world_x(sign * u, z), z))
                    z += rng.uniform(6.0, 18.0)
            if not road.guardrail[side] and rng.random() < 0.55:
                u, z = road.verge(side) + rng.uniform(3.0, 8.0), rng.uniform(-5.0, 10.0)
                while z < 150.0:
                    length, gap = rng.uniform(8.0, 30.0), rng.uniform(1.0, 12.0)
                    z0 = max(z, 1.0)
                    if z + length > z0 + 1.0:
                        x = road.world_x(sign * u, z0)
                        self.add(
                            BUILDINGS,
                            objects.building(cam, rng, clim, x, z0, z + length, int(sign), rng.uniform(8.0, 15.0)),
                        )
                    z += length + gap
