"""The model specification: ``mlops.yaml`` read into a frozen :class:`~.modelspec.ModelSpec`.

:mod:`.modelspec` reads and validates the file against ``schemas/model.schema.json`` (through the
bounded reader in :mod:`mlops_cli.validation`); :mod:`.checks` adds what a schema cannot say
(the entrypoint exists, shapes make sense, weights are not empty) by reading files and parsing
code, never running it; :mod:`.scaffold` writes new model folders from the shipped templates.
"""
