"""The built-in pipeline steps, one plugin module each (``reoptd.plugins.STEPS``): ``retrain``,
``tune``, ``compress``, ``validate``. Each declares its name and its policy checks; the step
itself (``reoptd.optimize._retrain`` ...) is imported when a run creates it."""

__all__: list[str] = []  # the steps are reached through reoptd.plugins.STEPS
