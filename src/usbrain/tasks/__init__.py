"""The four tasks on a loaded :class:`~usbrain.pipeline.Pipeline`: generate, condition, heal and
lesion. Each returns a :class:`~usbrain.tasks.results.Result`; :mod:`usbrain.tasks.outputs`
writes results as NIfTI + PNG + JSON sidecar."""
