"""`stronglens run` remakes the embedded sky when the sky model changed (after an upgrade) instead of
reusing a sky made by another model; the marker's fingerprint decides."""

from __future__ import annotations

import dataclasses

import pytest

from stronglens import cli
from stronglens.synth import model


def test_sky_fingerprint_follows_the_sky_model(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cli._sky_fingerprint()
    assert cli._sky_fingerprint() == before  # stable: no object ids or timestamps in it
    changed = dataclasses.replace(model.SkyModel(), x_latent=(0.25, 0.09, 0.06))
    monkeypatch.setattr(model, "SkyModel", lambda: changed)
    assert cli._sky_fingerprint() != before
