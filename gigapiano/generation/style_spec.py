"""`--style` and `--style_strength` as a value: which styles, how much of each (no torch, so the command
line checks them before loading anything).

`baroque` is one style at full weight; `baroque:0.5,romantic:0.5` blends two. The strength scales every
style weight; what is left to 1 goes to the base model (see `style_mix` for the sampling rule).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The largest strength (and the largest total style weight after scaling): past 2 the base model's
#: log-probabilities are subtracted more than once and the samples stop sounding like either model.
MAX_STYLE_STRENGTH = 2.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class StyleBlend:
    """Styles with their weights, and a strength that scales them.

    Attributes:
        weights: `(style, weight)` pairs in the order given; weights are positive.
        strength: 0 = the base model, 1 = the styles as weighted, above 1 extrapolates past them.
    """

    weights: tuple[tuple[str, float], ...]
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("A style blend needs at least one style.")
        names = [name for name, _ in self.weights]
        for name, weight in self.weights:
            if name == "all":
                raise ValueError("'all' cannot be blended; list the styles, e.g. baroque:0.5,romantic:0.5.")
            if not _NAME.match(name):
                raise ValueError(f"Bad style name {name!r} in the style blend.")
            if name == "base":
                raise ValueError(
                    "The base model is not a style weight: it gets what the styles leave "
                    "(lower --style_strength for more of it)."
                )
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"Style weight of {name} must be a number > 0, got {weight}.")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"Style {duplicates[0]} appears twice in the style blend.")
        if not (math.isfinite(self.strength) and 0 <= self.strength <= MAX_STYLE_STRENGTH):
            raise ValueError(f"style_strength must be in 0..{MAX_STYLE_STRENGTH:g}, got {self.strength}.")
        total = self.strength * sum(weight for _, weight in self.weights)
        if total > MAX_STYLE_STRENGTH + 1e-9:
            raise ValueError(
                f"The style weights times the strength add up to {total:g}; at most {MAX_STYLE_STRENGTH:g} "
                "is allowed (lower the weights or --style_strength)."
            )

    @classmethod
    def parse(cls, spec: str, strength: float = 1.0) -> StyleBlend:
        """`baroque`, `baroque:0.7` or `baroque:0.5,romantic:0.5` (spaces allowed around the parts).

        Raises:
            ValueError: an empty part, a weight that is not a positive number, a repeated style, a strength
                outside 0..2 or weights that add up to more than 2 after scaling.
        """
        pairs = []
        for part in spec.split(","):
            name, sep, weight_text = part.strip().partition(":")
            name = name.strip()
            if not name:
                raise ValueError(f"Empty style in {spec!r}; write e.g. baroque:0.5,romantic:0.5.")
            if not sep:
                weight = 1.0
            else:
                try:
                    weight = float(weight_text)
                except ValueError:
                    raise ValueError(
                        f"Style weight {weight_text.strip()!r} of {name} is not a number "
                        "(write e.g. baroque:0.5,romantic:0.5)."
                    ) from None
            pairs.append((name, weight))
        return cls(tuple(pairs), float(strength))

    @property
    def is_blend(self) -> bool:
        """True unless this is one style at full weight and strength 1 (the plain style model)."""
        return len(self.weights) > 1 or self.weights[0][1] != 1.0 or self.strength != 1.0

    @property
    def effective_weights(self) -> dict[str, float]:
        """Each style's weight times the strength."""
        return {name: weight * self.strength for name, weight in self.weights}

    @property
    def base_weight(self) -> float:
        """What the styles leave to the base model: 1 - the sum of the effective weights (negative past 1)."""
        return 1.0 - sum(self.effective_weights.values())

    def members(self) -> list[tuple[str, float]]:
        """`(model name, weight)` of every model the blend runs, the base model (`base`) first; models of
        weight 0 are left out (strength 0 runs the base alone, one style at strength 1 that style alone)."""
        weights = {"base": self.base_weight, **self.effective_weights}
        return [(name, w) for name, w in weights.items() if not math.isclose(w, 0.0, abs_tol=1e-12)]

    def describe(self) -> str:
        """`baroque:0.5,romantic:0.5` (weights as given, `:1` left out), with `@strength` unless it is 1."""
        text = ",".join(name if weight == 1.0 else f"{name}:{weight:g}" for name, weight in self.weights)
        return text if self.strength == 1.0 else f"{text}@{self.strength:g}"

    def record(self) -> dict[str, object]:
        """What the sidecar JSON records: the spec, the strength and every model's effective weight."""
        weights = {"base": round(self.base_weight, 6)}
        weights.update({name: round(weight, 6) for name, weight in self.effective_weights.items()})
        return {"style_blend": self.describe(), "style_strength": self.strength, "model_weights": weights}


__all__ = ["MAX_STYLE_STRENGTH", "StyleBlend"]
