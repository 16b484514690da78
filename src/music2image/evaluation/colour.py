"""Colour measures of one image, in CIELAB (scikit-image's sRGB → L*a*b*, D65 white, 2° observer).

- lightness: mean L* (0 black … 100 white).
- chroma: mean C*ab = √(a*² + b*²) over the pixels (0 grey; ≈ 134 for sRGB's most saturated blue).
- hue: the angle, in degrees, of the mean (a*, b*): the image's dominant hue direction (sRGB red ≈ 40°).
- warmth: mean over the pixels of Ou, Luo, Woodcock & Wright's (2004, Color Research & Application 29:232)
  warm–cool index for a single colour, WC = −0.5 + 0.02 · (C*)^1.07 · cos(h − 50°): greys are slightly cool (−0.5),
  saturated reds, oranges and yellows warm (> 0), saturated blues and cyans cool (< −0.5).
- colourfulness: Hasler & Süsstrunk (2003, Proc. SPIE 5007), M = σ_rgyb + 0.3 · μ_rgyb on the 0–255 sRGB values,
  with rg = R − G and yb = (R + G)/2 − B (≈ 0 grey, 15 slightly, 59 quite, > 109 extremely colourful).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WARM_HUE_DEGREES = 50.0  # Ou et al. (2004): the hue angle of greatest warmth


@dataclass(frozen=True)
class ColourMeasures:
    lightness: float
    chroma: float
    hue: float
    warmth: float
    colourfulness: float


def warmth_index(chroma: np.ndarray, hue_degrees: np.ndarray) -> np.ndarray:
    """Ou et al. (2004) warm–cool index of colours given as CIELAB chroma and hue angle (degrees)."""
    return -0.5 + 0.02 * np.power(chroma, 1.07) * np.cos(np.deg2rad(hue_degrees - WARM_HUE_DEGREES))


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M of an (h, w, 3) sRGB image with values 0–255."""
    red, green, blue = (rgb[..., channel].astype(np.float64) for channel in range(3))
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    offset = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * offset)


def colour_measures(rgb: np.ndarray) -> ColourMeasures:
    """The measures above for an (h, w, 3) uint8 sRGB image."""
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb)  # uint8 input is scaled to 0–1 and linearised by scikit-image
    a_star, b_star = lab[..., 1], lab[..., 2]
    chroma = np.hypot(a_star, b_star)
    hue = np.degrees(np.arctan2(b_star, a_star))
    return ColourMeasures(
        lightness=float(lab[..., 0].mean()),
        chroma=float(chroma.mean()),
        hue=float(np.degrees(np.arctan2(b_star.mean(), a_star.mean())) % 360.0),
        warmth=float(warmth_index(chroma, hue).mean()),
        colourfulness=colourfulness(rgb),
    )
