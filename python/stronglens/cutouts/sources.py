"""Where cutout pixels come from: the :class:`CutoutSource` protocol and its registry.

A source turns manifest rows into :class:`~stronglens.cutouts.http.FetchResult` s; the store, the
resume logic and the ``cutouts`` table (:mod:`stronglens.cutouts.pipeline`) are the same whichever
source made them.  The ``cutout_source`` var names one entry of :data:`SOURCES`.  A new source is a
class with the members below, decorated with :func:`register`; nothing else changes.

* ``synthetic``: rendered from the Tractor parameters (the embedded default sky).
* ``legacysurvey``: FITS cutouts over HTTP from the Legacy Survey viewer (real data), requested at
  the manifest's ``cutout_url`` (built once, in SQL).
* ``coadd``: cut from DR10 brick coadd images, local or ``s3://`` (real data, bulk).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Protocol

import pyarrow as pa

from stronglens.cutouts.http import FetchResult, utc_now_iso

if TYPE_CHECKING:
    from stronglens.cutouts.settings import CutoutSettings


class CutoutSource(Protocol):
    """What the pipeline needs from a source of cutout pixels."""

    #: The ``cutout_source`` value that selects it.
    name: ClassVar[str]
    #: Manifest columns it reads beyond the pipeline's own (``sample_id``, ``ra``, ``dec``, ...).
    columns: ClassVar[tuple[str, ...]]
    #: Whether it draws catalogue neighbours (``int_cutout_neighbours``) into the cutouts.
    needs_neighbours: ClassVar[bool]

    @staticmethod
    def check(settings: CutoutSettings) -> None:
        """Raise :class:`~stronglens.cutouts.settings.CutoutSettingsError` for settings it cannot honour."""
        ...

    @staticmethod
    def fetch(
        todo: pa.Table, settings: CutoutSettings, neighbours: pa.Table | None, batch_size: int
    ) -> Iterator[FetchResult]:
        """One result per row of ``todo`` (any order); a failed cutout is a result, never an exception."""
        ...


#: ``cutout_source`` value -> source.
SOURCES: dict[str, type[CutoutSource]] = {}


def register(source: type[CutoutSource]) -> type[CutoutSource]:
    """Class decorator: make ``source`` selectable as ``cutout_source: <source.name>``."""
    if source.name in SOURCES:
        raise ValueError(f"cutout source {source.name!r} is registered twice")
    SOURCES[source.name] = source
    return source


def _positions(todo: pa.Table) -> Iterator[tuple[str, float, float]]:
    return zip(
        todo.column("sample_id").to_pylist(),
        todo.column("ra").to_pylist(),
        todo.column("dec").to_pylist(),
        strict=True,
    )


@register
class SyntheticSource:
    """Renders each cutout from its Tractor parameters (stronglens.cutouts.render)."""

    name: ClassVar[str] = "synthetic"
    columns: ClassVar[tuple[str, ...]] = ()
    needs_neighbours: ClassVar[bool] = True

    @staticmethod
    def check(settings: CutoutSettings) -> None:
        from stronglens.cutouts.render import BANDS
        from stronglens.cutouts.settings import CutoutSettingsError

        unknown = [b for b in settings.bands if b not in BANDS]
        if unknown:
            raise CutoutSettingsError(
                f"cutout_bands {settings.bands!r}: the synthetic source renders only {''.join(BANDS)}"
            )

    @staticmethod
    def fetch(
        todo: pa.Table, settings: CutoutSettings, neighbours: pa.Table | None, batch_size: int
    ) -> Iterator[FetchResult]:
        from stronglens.cutouts.render import BANDS, RenderConfig, render_batch

        config = RenderConfig(n_pix=settings.size, pixel_scale=settings.pixscale)
        channels = [BANDS.index(b) for b in settings.bands]
        for start in range(0, todo.num_rows, batch_size):
            batch = todo.slice(start, batch_size)
            rendered = render_batch(batch, neighbours, seed=settings.seed, config=config)
            status = rendered.metadata.column("status").to_pylist()
            errors = rendered.metadata.column("error").to_pylist()
            now = utc_now_iso()
            galaxy_ids = batch.column("galaxy_id").to_pylist()
            for i, sample_id in enumerate(batch.column("sample_id").to_pylist()):
                ok = status[i] == "ok"
                yield FetchResult(
                    sample_id=sample_id,
                    status="ok" if ok else "failed",
                    reason=None if ok else errors[i],
                    attempts=1,
                    cutout=rendered.cutouts[i][..., channels] if ok else None,
                    bytes=0,
                    url=f"synthetic:galaxy_id={galaxy_ids[i]}&seed={settings.seed}",
                    fetched_at=now,
                )


@register
class LegacySurveySource:
    """FITS cutouts over HTTP, politely (stronglens.cutouts.http), at the manifest's ``cutout_url``."""

    name: ClassVar[str] = "legacysurvey"
    columns: ClassVar[tuple[str, ...]] = ("cutout_url",)
    needs_neighbours: ClassVar[bool] = False

    @staticmethod
    def check(settings: CutoutSettings) -> None:
        return None

    @staticmethod
    def fetch(
        todo: pa.Table, settings: CutoutSettings, neighbours: pa.Table | None, batch_size: int
    ) -> Iterator[FetchResult]:
        from stronglens.cutouts.http import LegacySurveyClient

        ids, urls = todo.column("sample_id").to_pylist(), todo.column("cutout_url").to_pylist()
        requests_ = zip(ids, urls, strict=True)
        with LegacySurveyClient.from_settings(settings) as client:
            yield from client.fetch_many(requests_)


@register
class CoaddSource:
    """Cut from DR10 brick coadds under ``cutout_coadd_root`` (stronglens.cutouts.coadd)."""

    name: ClassVar[str] = "coadd"
    columns: ClassVar[tuple[str, ...]] = ()
    needs_neighbours: ClassVar[bool] = False

    @staticmethod
    def check(settings: CutoutSettings) -> None:
        from stronglens.cutouts.settings import CutoutSettingsError

        if not settings.coadd_root:
            raise CutoutSettingsError(
                "cutout_source 'coadd' needs the cutout_coadd_root var (a folder or s3:// prefix)"
            )

    @staticmethod
    def fetch(
        todo: pa.Table, settings: CutoutSettings, neighbours: pa.Table | None, batch_size: int
    ) -> Iterator[FetchResult]:
        from stronglens.cutouts.coadd import CoaddCutter

        with CoaddCutter.from_settings(settings, batch_size=batch_size) as cutter:
            yield from cutter.cut_many(_positions(todo))
