"""The model families, one file each with its config (transformers ``PreTrainedModel`` / ``PreTrainedConfig``).

- :mod:`.modeling_utils`: ``ExprPreTrainedModel``, the base every family derives from (safetensors, cards, errors);
- :mod:`.layers`: the blocks the families share;
- :mod:`.cyclegan`, :mod:`.sagan`: the generators (with :mod:`.warp_refine`, the flow-and-refine generator both use);
- :mod:`.average_edit`: the no-learning baseline; :mod:`.style_transfer`: NST's VGG features and optimisation;
- :mod:`.classifier`: the expression classifier; :mod:`.segmenter`: the Mask R-CNN face segmenter;
- :mod:`.runtime`: running them fast on a CPU (precision, threads).

Models know nothing of publishing: ``expr_models.hub`` registers the card writer and the pushes with
:class:`~.modeling_utils.ExprPreTrainedModel` when the package is imported.
"""
