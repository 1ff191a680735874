"""The lens finder: data (manifest -> tensors), models, training, the Finder contract, metrics and
reports.  The dbt Python models under ``models/marts/training/`` call :mod:`.runs` and
:mod:`.evaluation`; the injection work loads a trained finder with :class:`.finder.Finder`."""
