"""Parameters of the synthetic IR/VIS road-scene generator, with their physical meaning."""

from __future__ import annotations

from dataclasses import dataclass, fields

from taskfuse.errors import TaskfuseError

COUNT_KEYS = ("cars", "persons", "bikes", "cones")
PROBABILITY_KEYS = ("night_fraction", "p_bump", "p_car_stop", "p_curb", "p_guardrail", "p_street_lamps")


@dataclass(frozen=True)
class SceneConfig:
    """What a scene may contain and how the two cameras see it. Defaults give a balanced day/night mix.

    Counts are inclusive ``(low, high)`` ranges drawn uniformly per scene; an object that does not fit (a lane
    already taken at that distance) is dropped, so a scene can hold fewer.
    """

    night_fraction: float = 0.5
    """Probability that a scene is at night."""
    cars: tuple[int, int] = (1, 5)
    """Cars per scene: in lanes (rear view driving away, front view oncoming) or parked at the kerb."""
    persons: tuple[int, int] = (1, 5)
    """Pedestrians per scene, on the sidewalks, the shoulder or crossing the road."""
    bikes: tuple[int, int] = (0, 2)
    """Bicycles per scene, side view; most carry a rider (a separate person instance), some are parked."""
    cones: tuple[int, int] = (0, 4)
    """Traffic cones per scene, in one row along a lane edge."""
    distance_range: tuple[float, float] = (5.0, 50.0)
    """Distances (m) of objects from the camera, drawn log-uniformly; the image size of an object is
    focal length x physical size / distance, so this range sets the range of object sizes in pixels."""
    size_jitter: float = 0.08
    """Relative spread of the physical object sizes (car width, person height, ...) around typical values."""
    p_curb: float = 0.8
    """Probability, per road side, of a painted kerb (class ``curve``)."""
    p_bump: float = 0.35
    """Probability of a painted speed bump across the road (class ``bump``)."""
    p_car_stop: float = 0.35
    """Probability of a stop line across the lanes of the camera's direction (class ``car_stop``)."""
    p_guardrail: float = 0.35
    """Probability, per road side, of a guardrail on the shoulder (that side then has no sidewalk)."""
    p_street_lamps: float = 0.7
    """Probability that street lamps line the road (lit at night)."""
    glare_strength: float = 1.0
    """Scale of the veiling glare and bloom around bright lights in the visible camera at night."""
    night_ambient: tuple[float, float] = (0.001, 0.006)
    """Range of the ambient illuminance at night (moon, sky glow) as a fraction of daylight, a few percent of
    the light under a street lamp (0.06-0.15)."""
    night_gain: float = 3.0
    """Visible camera gain at night relative to day; too low to restore daylight brightness, it leaves the
    unlit scene dark and multiplies the sensor noise."""
    vis_full_well: float = 1000.0
    """Electrons of a visible pixel at full scale at day exposure: shot-noise std is sqrt(electrons)."""
    vis_read_noise: float = 10.0
    """Read noise of the visible sensor in electrons; with the night gain it dominates dark regions."""
    ego_headlights: float = 0.1
    """Illuminance of the camera car's low beams on the road 5 m ahead, as a fraction of daylight."""
    ir_resolution: float = 0.5
    """Infrared sensor resolution as a fraction of the output size (microbolometers have fewer pixels);
    the infrared image is rendered at this scale and upsampled bilinearly."""
    ir_blur: float = 0.6
    """Gaussian blur sigma of the infrared optics, in infrared-sensor pixels."""
    ir_noise: float = 0.012
    """Temporal noise std of the infrared image, in output units [0, 1]."""
    ir_column_noise: float = 0.006
    """Fixed-pattern column-offset std of the infrared image (uncorrected microbolometer columns)."""
    paint_ir_contrast: float = 0.6
    """Temperature deficit (K) of white road paint against asphalt in sunshine (paint absorbs less sunlight);
    zero at night. At about 0.9 K per percent of the infrared range this is a barely visible contrast."""

    def __post_init__(self) -> None:
        for key in PROBABILITY_KEYS:
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise TaskfuseError(f"SceneConfig.{key} = {value}: a probability must lie in [0, 1]")
        for key in COUNT_KEYS:
            lo, hi = getattr(self, key)
            if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
                raise TaskfuseError(f"SceneConfig.{key} = {(lo, hi)}: give an inclusive range 0 <= low <= high")
        near, far = self.distance_range
        if not 2.0 <= near < far:
            raise TaskfuseError(
                f"SceneConfig.distance_range {self.distance_range}: give (near, far) metres, 2 <= near < far"
            )
        lo, hi = self.night_ambient
        if not 0.0 <= lo <= hi <= 1.0:
            raise TaskfuseError(f"SceneConfig.night_ambient = {self.night_ambient}: give 0 <= low <= high <= 1")
        if not 0.05 <= self.ir_resolution <= 1.0:
            raise TaskfuseError(f"SceneConfig.ir_resolution = {self.ir_resolution}: use a value in [0.05, 1]")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and value < 0:
                raise TaskfuseError(f"SceneConfig.{f.name} = {value}: must not be negative")
        if self.vis_full_well <= 0 or self.night_gain <= 0:
            raise TaskfuseError("SceneConfig.vis_full_well and SceneConfig.night_gain must be positive")
