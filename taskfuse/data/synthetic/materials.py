"""Surface materials and the weather of a scene: what each camera sees of a surface.

Visible camera: a surface reflects ``albedo`` (display-referred RGB) times the illuminance; lights add their
own radiance ``emit``. Infrared camera (8-14 um): a surface appears at its apparent temperature, the
emissivity-weighted mix of its own temperature and the reflected surroundings (Kirchhoff: reflectance =
1 - emissivity). Temperatures follow a simple energy balance (Incropera & DeWitt, ch. 1 and 12):

- in sunshine a surface warms above air by its solar absorptance (1 - albedo luminance) times
  ``sun_heat``; asphalt (absorptance ~0.9, low conductivity) the most, vegetation little (transpiration);
- at night exposed ground cools by radiation to the cold sky while asphalt and buildings release stored
  heat, so asphalt stays warmer than the air and grass falls below it;
- people (skin ~33 C, clothing between skin and air) and running cars (engine, tyres, exhaust) are heat
  sources whatever the hour;
- glass and bare metal have low emissivity and mirror the cold sky, so they look colder than they are;
- paint is a thin layer on the road: it shares the asphalt temperature except for the sunlight it reflects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Colour = tuple[float, float, float]


def lum(c: Colour) -> float:
    """BT.601 luma of an RGB triple."""
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


@dataclass(frozen=True)
class Material:
    """What both cameras see of one part: reflectance, apparent temperature (C), light emitted, texture."""

    albedo: Colour
    temp: float
    emit: Colour = (0.0, 0.0, 0.0)
    grain: float = 0.03
    """Standard deviation of the multiplicative visible texture (asphalt grain, fabric, foliage)."""


@dataclass(frozen=True)
class Climate:
    """Scene-wide conditions: time of day, air and sky temperatures, light, haze."""

    night: bool
    overcast: bool
    t_air: float
    sun_heat: float
    """Temperature rise (K) of a black surface in the sun; 0 at night."""
    road_excess: float
    """Asphalt temperature above air (K), from sunshine by day and stored heat at night."""
    t_sky: float
    t_sky_horizon: float
    e_sun: float
    """Direct sunlight illuminance (fraction of full daylight); 0 at night."""
    e_sky: float
    """Diffuse illuminance: skylight by day, moon and sky glow at night."""
    sun_shadow: tuple[float, float]
    """Ground offset (dX, dZ) of a shadow per metre of height above the ground."""
    haze: float
    """Visibility distance (m): contrast falls as exp(-Z / haze)."""
    sky_zenith: Colour
    sky_horizon: Colour
    lamp_power: float
    lamp_colour: Colour

    def surface(self, albedo: Colour | float, excess: float = 0.0) -> float:
        """Temperature of a sunlit surface: air + solar absorptance * sun_heat + ``excess`` (own heat)."""
        a = albedo if isinstance(albedo, float) else lum(albedo)
        return self.t_air + (1.0 - a) * self.sun_heat + excess

    def apparent(self, temp: float, emissivity: float) -> float:
        """Apparent temperature of a surface that reflects half sky, half surroundings."""
        reflected = 0.5 * (self.t_sky + self.t_air)
        return emissivity * temp + (1.0 - emissivity) * reflected

    @property
    def t_road(self) -> float:
        return self.t_air + self.road_excess


def sample_climate(rng: np.random.Generator, night: bool, night_ambient: tuple[float, float]) -> Climate:
    """Draw the weather. Every value is drawn whatever ``night`` is, so that one seed gives the same
    draws by day and by night and only the physics differs."""
    overcast = rng.random() < 0.3
    t_day, t_night = rng.uniform(12.0, 32.0), rng.uniform(2.0, 20.0)
    sun = rng.uniform(6.0, 16.0) * (0.35 if overcast else 1.0)
    road_day, road_night = 0.9 * sun + rng.uniform(1.0, 4.0), rng.uniform(2.5, 6.0)
    sky_drop = rng.uniform(6.0, 12.0) if overcast else rng.uniform(25.0, 40.0)
    horizon_drop = rng.uniform(3.0, 8.0)
    e_sun = rng.uniform(0.1, 0.2) if overcast else rng.uniform(0.65, 0.85)
    e_sky, ambient = rng.uniform(0.15, 0.3), rng.uniform(*night_ambient)
    azimuth, tan_zenith = rng.uniform(0.0, 2.0 * np.pi), rng.uniform(0.4, 2.0)
    haze_day, haze_night = rng.uniform(150.0, 500.0), rng.uniform(100.0, 300.0)
    blue, glow = rng.uniform(0.8, 1.1), rng.uniform(0.5, 1.5)
    lamp_power, sodium = rng.uniform(0.06, 0.15), rng.random() < 0.5
    t_air = t_night if night else t_day
    if night:
        zenith, horizon = (0.001, 0.0012, 0.002), (0.005 * glow, 0.004 * glow, 0.003 * glow)
    elif overcast:
        zenith, horizon = (0.62, 0.64, 0.67), (0.78, 0.79, 0.8)
    else:
        zenith, horizon = (0.25 * blue, 0.45 * blue, 0.82), (0.74, 0.8, 0.86)
    return Climate(
        night=night,
        overcast=overcast,
        t_air=t_air,
        sun_heat=0.0 if night else sun,
        road_excess=road_night if night else road_day,
        t_sky=t_air - sky_drop,
        t_sky_horizon=t_air - horizon_drop,
        e_sun=0.0 if night else e_sun,
        e_sky=ambient if night else e_sky,
        sun_shadow=(tan_zenith * np.sin(azimuth), abs(tan_zenith * np.cos(azimuth))),
        haze=haze_night if night else haze_day,
        sky_zenith=zenith,
        sky_horizon=horizon,
        lamp_power=lamp_power if night else 0.0,
        lamp_colour=(1.0, 0.72, 0.42) if sodium else (0.95, 0.97, 1.0),
    )


def pick(rng: np.random.Generator, palette: tuple[tuple[Colour, float], ...]) -> Colour:
    """A colour from a (colour, weight) palette, brightness jittered by +-10 %."""
    weights = np.array([w for _, w in palette])
    colour = palette[int(rng.choice(len(palette), p=weights / weights.sum()))][0]
    k = rng.uniform(0.9, 1.1)
    return (min(colour[0] * k, 1.0), min(colour[1] * k, 1.0), min(colour[2] * k, 1.0))


CAR_PAINT: tuple[tuple[Colour, float], ...] = (
    ((0.85, 0.85, 0.83), 0.25),
    ((0.55, 0.56, 0.58), 0.2),
    ((0.05, 0.05, 0.06), 0.2),
    ((0.28, 0.28, 0.3), 0.12),
    ((0.55, 0.06, 0.05), 0.08),
    ((0.08, 0.15, 0.42), 0.08),
    ((0.1, 0.25, 0.12), 0.03),
    ((0.62, 0.52, 0.36), 0.04),
)
"""Car colours with their approximate share of the fleet (white, silver, black, grey lead)."""

CLOTHES: tuple[tuple[Colour, float], ...] = (
    ((0.05, 0.05, 0.05), 0.22),
    ((0.06, 0.08, 0.2), 0.12),
    ((0.35, 0.35, 0.35), 0.1),
    ((0.8, 0.8, 0.78), 0.1),
    ((0.6, 0.08, 0.08), 0.07),
    ((0.15, 0.3, 0.6), 0.08),
    ((0.2, 0.28, 0.45), 0.12),
    ((0.52, 0.46, 0.3), 0.07),
    ((0.15, 0.3, 0.15), 0.05),
    ((0.32, 0.2, 0.12), 0.05),
    ((0.85, 0.72, 0.15), 0.02),
)
"""Clothing colours; dark clothing dominates, as on real streets."""

SKIN: tuple[tuple[Colour, float], ...] = (
    ((0.87, 0.69, 0.57), 1.0),
    ((0.78, 0.57, 0.44), 1.0),
    ((0.6, 0.42, 0.3), 1.0),
    ((0.4, 0.27, 0.18), 1.0),
    ((0.28, 0.18, 0.12), 1.0),
)
HAIR: tuple[tuple[Colour, float], ...] = (
    ((0.05, 0.04, 0.03), 3.0),
    ((0.25, 0.15, 0.08), 2.0),
    ((0.55, 0.42, 0.22), 1.0),
    ((0.55, 0.55, 0.55), 1.0),
)
BIKE_PAINT: tuple[tuple[Colour, float], ...] = (
    ((0.05, 0.05, 0.05), 3.0),
    ((0.6, 0.08, 0.06), 1.0),
    ((0.12, 0.22, 0.55), 1.0),
    ((0.85, 0.85, 0.85), 1.0),
    ((0.55, 0.56, 0.58), 1.0),
)
FACADE: tuple[tuple[Colour, float], ...] = (
    ((0.7, 0.65, 0.55), 2.0),
    ((0.5, 0.26, 0.18), 1.0),
    ((0.8, 0.8, 0.78), 1.0),
    ((0.45, 0.45, 0.46), 1.0),
    ((0.62, 0.5, 0.4), 1.0),
)
KERB_PAINT: tuple[tuple[Colour, Colour], ...] = (
    ((0.85, 0.85, 0.82), (0.7, 0.1, 0.08)),
    ((0.85, 0.7, 0.1), (0.08, 0.08, 0.08)),
    ((0.85, 0.85, 0.82), (0.85, 0.85, 0.82)),
    ((0.85, 0.7, 0.1), (0.85, 0.7, 0.1)),
)
"""Kerb-marking paint pairs, alternated along the road: red/white, yellow/black, plain white, plain yellow."""
WHITE_PAINT: Colour = (0.8, 0.8, 0.77)
YELLOW_PAINT: Colour = (0.85, 0.68, 0.12)
CONE_ORANGE: Colour = (0.95, 0.33, 0.05)
