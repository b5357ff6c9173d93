"""The editing methods, one module each; :mod:`.base` holds their interface (:class:`~.base.EditingMethod`,
:class:`~.base.FaceToEdit`). ``expr_models.components.EDITING_METHODS`` registers them, in the order the CLI and
the Space list them."""
