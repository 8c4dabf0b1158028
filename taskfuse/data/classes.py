"""Class names and colour palettes of the labelled datasets taskfuse reads (index = label value).

Segmentation sets map a label value ``i`` to ``names[i]``; ``IGNORE_INDEX`` (255) marks pixels no loss or
metric counts. Detection sets map the class column of a box to ``names[i]``; their names are spelled as in
the published annotation files, so that a parsed name can be looked up exactly.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassSet:
    """Names and RGB palette of a label set; ``names[i]`` is the class of label value ``i``."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int | None:
        """Position of ``name`` (compared case-insensitively), or None when it is not a class of this set."""
        folded = name.strip().casefold()
        for i, n in enumerate(self.names):
            if n.casefold() == folded:
                return i
        return None


def spread_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """``n`` distinct drawing colours (hues a golden angle apart), for class sets read from annotation files."""
    colours = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.381966) % 1.0, 0.75, 0.95)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return tuple(colours)


MSRS = ClassSet(
    names=("unlabelled", "car", "person", "bike", "curve", "car_stop", "guardrail", "color_cone", "bump"),
    palette=(
        (0, 0, 0),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
        (0, 0, 192),
        (128, 128, 0),
        (64, 64, 128),
        (192, 128, 128),
        (192, 64, 0),
    ),
)
"""MSRS (Tang et al. 2022) uses the MFNet label set and palette (Ha et al. 2017)."""

MFNET = MSRS

FMB = ClassSet(
    names=(
        "unlabelled",
        "road",
        "sidewalk",
        "building",
        "lamp",
        "sign",
        "vegetation",
        "sky",
        "person",
        "car",
        "truck",
        "bus",
        "motorcycle",
        "bicycle",
        "pole",
    ),
    palette=(
        (0, 0, 0),
        (228, 228, 179),
        (133, 57, 181),
        (177, 162, 67),
        (50, 178, 200),
        (199, 45, 132),
        (84, 172, 66),
        (79, 73, 179),
        (166, 99, 76),
        (253, 121, 66),
        (91, 165, 137),
        (152, 97, 155),
        (140, 153, 105),
        (158, 215, 222),
        (90, 113, 135),
    ),
)
"""FMB (Liu et al., SegMiF, ICCV 2023): 14 classes plus unlabelled (0), in the order and colours of its ``color``
visualisations (the dataset's own spelling is capitalised: Road, Sidewalk, ...)."""

PST900 = ClassSet(
    names=("background", "fire_extinguisher", "backpack", "hand_drill", "survivor"),
    palette=((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)),
)
"""PST900 (Shivakumar et al. 2019): label values 0..4 as in the PSTNet evaluation; the palette is the toolkit's
colormap (``toolkit/utilities.py``, written in OpenCV's BGR order) converted to RGB."""

M3FD = ClassSet(
    names=("People", "Car", "Bus", "Lamp", "Motorcycle", "Truck"),
    palette=((255, 0, 0), (193, 195, 55), (47, 167, 180), (245, 65, 196), (248, 79, 44), (125, 44, 200)),
)
"""M3FD (Liu et al., TarDAL, CVPR 2022) detection classes, spelled and ordered as in TarDAL's ``loader/m3fd.py``
(the ``<name>`` values of the VOC XML files), with TarDAL's drawing colours."""

LLVIP = ClassSet(names=("person",), palette=((255, 0, 0),))
"""LLVIP (Jia et al., ICCV 2021): one detection class, ``person`` in the VOC XML files; the colour is ours."""

MSRS_DET = ClassSet(names=("person", "bicycle", "car"), palette=((220, 20, 60), (255, 160, 0), (0, 90, 255)))
"""Detection classes of the MSRS test pairs with boxes (``msrs_det``), in the order of the label set's
``classes.txt`` (0 person, 1 bicycle, 2 car); the colours are ours."""
