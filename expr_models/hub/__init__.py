"""Where models come from and go to: the editor repo, model cards, the Space export and the editor's model store.

- :mod:`.editor_repo`: one editor repo (``model_index.json`` + a folder per component), loading, saving, pushing;
- :mod:`.cards`: model, editor and dataset cards; the card writer the models are given (:class:`.cards.HubPublisher`);
- :mod:`.space_export`: a Hugging Face Space folder of the app, the package and the checkpoints;
- :mod:`.model_store`: the editor's components, found by ``model_type`` and loaded on first use.
"""
