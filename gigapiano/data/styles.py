"""Composer styles: which MAESTRO performances make up a fine-tuning style.

A style is one YAML file in ``configs/styles/`` (or anywhere, given by path). Schema::

    name: baroque                       # identifier used on the command line and in Hub repo names
    display_name: "Baroque (J. S. Bach)"
    description: "..."                  # optional
    composers: ["Johann Sebastian Bach"]  # MAESTRO `canonical_composer` values
    include_arrangements: false         # optional; also match "Bach / Busoni"-style credits
    pieces: thesis                      # default selection: `thesis` or `all`
    thesis_pieces: [2004/....midi, ...]  # required when `pieces: thesis`

``pieces: thesis`` reproduces the 50 performances upstream fine-tuned on; ``pieces: all`` takes every
MAESTRO performance of the composers. A style made on the fly from ``--composer "Franz Liszt"`` uses
``pieces: all``.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

logger = logging.getLogger(__name__)

PieceSelection = Literal["thesis", "all"]
PIECE_SELECTIONS: tuple[str, ...] = ("thesis", "all")

#: Environment variable that overrides where named styles are looked up.
STYLES_DIR_ENV = "GIGAPIANO_STYLES_DIR"

_KNOWN_KEYS = frozenset(
    {"name", "display_name", "description", "composers", "include_arrangements", "pieces", "thesis_pieces"}
)


class UnknownStyleError(ValueError):
    """Raised when a style name matches no YAML file in the styles folder."""


def normalize_name(name: str) -> str:
    """Folds a composer name or title for matching: no accents, case-folded, single spaces.

    Args:
        name: A free-form name such as ``"Frédéric  Chopin"``.

    Returns:
        The folded name (``"frederic chopin"``), so users may type names without accents.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\s+", " ", stripped).strip().casefold()


def default_styles_dir() -> Path:
    """Returns the folder holding the style YAML files.

    ``$GIGAPIANO_STYLES_DIR`` wins when set; otherwise ``configs/styles`` of the source checkout (two
    levels above this package), which is where the project keeps its styles.

    Returns:
        The styles folder (it may not exist when the package was installed without the repository).
    """
    override = os.environ.get(STYLES_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[2] / "configs" / "styles"


@dataclasses.dataclass(frozen=True)
class GigaPianoStyle:
    """A named set of MAESTRO composers (and optionally an exact list of performances).

    Args:
        name: Identifier (lower case, no spaces), e.g. ``"baroque"``.
        display_name: Human-readable name for model cards and the demo.
        composers: MAESTRO ``canonical_composer`` values; matched ignoring case and accents.
        pieces: Default selection: ``"thesis"`` (the fixed ``thesis_pieces`` list) or ``"all"``.
        thesis_pieces: MAESTRO ``midi_filename``s of the upstream subset; required for ``"thesis"``.
        include_arrangements: Whether ``pieces="all"`` also takes rows credited ``"<composer> / <arranger>"``.
        description: Free text.
        source: The YAML file the style came from, if any (for error messages).
    """

    name: str
    display_name: str
    composers: tuple[str, ...]
    pieces: PieceSelection = "all"
    thesis_pieces: tuple[str, ...] = ()
    include_arrangements: bool = False
    description: str = ""
    source: Path | None = None

    def __post_init__(self) -> None:
        where = f" in {self.source}" if self.source else ""
        if not self.name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise ValueError(
                f"Style name {self.name!r}{where} is invalid: use letters, digits, '_', '-' or '.', for "
                "example 'baroque'."
            )
        if isinstance(self.composers, str) or not self.composers:
            raise ValueError(
                f"Style {self.name!r}{where} needs a non-empty list `composers`, got {self.composers!r}; "
                'write e.g. `composers: ["Johann Sebastian Bach"]`.'
            )
        blank = [c for c in self.composers if not isinstance(c, str) or not c.strip()]
        if blank:
            raise ValueError(f"Style {self.name!r}{where} has empty composer entries {blank!r}; remove them.")
        if self.pieces not in PIECE_SELECTIONS:
            raise ValueError(
                f"Style {self.name!r}{where} has pieces={self.pieces!r}; use one of {list(PIECE_SELECTIONS)}."
            )
        if self.pieces == "thesis" and not self.thesis_pieces:
            raise ValueError(
                f"Style {self.name!r}{where} selects pieces='thesis' but lists no `thesis_pieces`; add the "
                "MAESTRO midi_filenames or use pieces='all'."
            )
        duplicates = sorted({p for p in self.thesis_pieces if self.thesis_pieces.count(p) > 1})
        if duplicates:
            raise ValueError(
                f"Style {self.name!r}{where} lists these thesis_pieces twice: {duplicates}; keep each once."
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: Path | None = None) -> GigaPianoStyle:
        """Builds a style from a parsed YAML mapping.

        Args:
            data: The mapping (see the module docstring for the keys).
            source: The file it came from, quoted in error messages.

        Returns:
            The validated style.
        """
        where = f" in {source}" if source else ""
        if not isinstance(data, Mapping):
            raise ValueError(f"A style must be a YAML mapping{where}, got {type(data).__name__}.")
        unknown = sorted(set(data) - _KNOWN_KEYS)
        if unknown:
            raise ValueError(f"Unknown style keys {unknown}{where}; allowed keys are {sorted(_KNOWN_KEYS)}.")
        if "name" not in data or "composers" not in data:
            raise ValueError(f"A style needs at least `name` and `composers`{where}.")
        composers = data["composers"]
        if isinstance(composers, str):
            composers = [composers]
        return cls(
            name=str(data["name"]),
            display_name=str(data.get("display_name") or data["name"]),
            composers=tuple(composers or ()),
            pieces=data.get("pieces", "thesis" if data.get("thesis_pieces") else "all"),
            thesis_pieces=tuple(data.get("thesis_pieces") or ()),
            include_arrangements=bool(data.get("include_arrangements", False)),
            description=str(data.get("description") or ""),
            source=source,
        )

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> GigaPianoStyle:
        """Reads a style YAML file.

        Args:
            path: Path to the ``.yaml`` file.

        Returns:
            The validated style.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Style file {path} does not exist; check the path.")
        with path.open(encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        return cls.from_dict(data, source=path)

    @classmethod
    def from_composers(cls, composers: Iterable[str], name: str | None = None) -> GigaPianoStyle:
        """Makes an ad-hoc style taking every MAESTRO performance of the given composers.

        Args:
            composers: Composer names, e.g. ``["Franz Liszt"]``.
            name: Style name; derived from the composers' surnames when omitted (``"liszt"``).

        Returns:
            A style with ``pieces="all"``.
        """
        composers = tuple(composers)
        if not composers:
            raise ValueError('No composer given; pass at least one, e.g. --composer "Franz Liszt".')
        if name is None:
            surnames = [normalize_name(c).split(" ")[-1] for c in composers if c.strip()]
            name = re.sub(r"[^a-z0-9_.-]+", "-", "-".join(surnames)).strip("-") or "custom"
        return cls(name=name, display_name=" + ".join(composers), composers=composers, pieces="all")

    def with_pieces(self, pieces: PieceSelection | None) -> GigaPianoStyle:
        """Returns a copy selecting ``pieces`` instead of the style's default (``None`` keeps it)."""
        return self if pieces is None else dataclasses.replace(self, pieces=pieces)

    def to_dict(self) -> dict[str, Any]:
        """Returns the YAML-ready mapping of this style (without ``source``)."""
        data = dataclasses.asdict(self)
        data.pop("source")
        data["composers"] = list(self.composers)
        data["thesis_pieces"] = list(self.thesis_pieces)
        return data


def available_styles(styles_dir: str | os.PathLike | None = None) -> list[str]:
    """Lists the style names found in the styles folder.

    Args:
        styles_dir: Folder with ``*.yaml`` style files; defaults to :func:`default_styles_dir`.

    Returns:
        Sorted style names (file stems).
    """
    folder = Path(styles_dir) if styles_dir is not None else default_styles_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_style(
    style: str | os.PathLike | GigaPianoStyle, styles_dir: str | os.PathLike | None = None
) -> GigaPianoStyle:
    """Resolves a style given by name, by YAML path, or already built.

    Args:
        style: A name such as ``"baroque"`` (looked up as ``<styles_dir>/<name>.yaml``), a path to a YAML
            file, or a :class:`GigaPianoStyle` (returned as is).
        styles_dir: Folder to look names up in; defaults to :func:`default_styles_dir`.

    Returns:
        The :class:`GigaPianoStyle`.

    Raises:
        UnknownStyleError: The name matches no file; the message lists the available styles.
    """
    if isinstance(style, GigaPianoStyle):
        return style
    text = os.fspath(style)
    candidate = Path(text).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return GigaPianoStyle.from_yaml(candidate)
    folder = Path(styles_dir) if styles_dir is not None else default_styles_dir()
    for suffix in (".yaml", ".yml"):
        path = folder / f"{text}{suffix}"
        if path.is_file():
            loaded = GigaPianoStyle.from_yaml(path)
            if loaded.name != text:
                logger.warning(
                    "Style file %s declares name %r; using it for style %r.", path, loaded.name, text
                )
            return loaded
    names = available_styles(folder)
    close = difflib.get_close_matches(text, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownStyleError(
        f"Unknown style {text!r}: no {text}.yaml in {folder}.{hint} Available styles: {names or 'none'}. "
        'Add a YAML file there, pass a path to one, or use --composer "<MAESTRO composer>".'
    )
