"""Publishing GIGA-Piano on the Hugging Face Hub and the web demo.

Modules (imported on demand, so that the demo's Space needs only `demo.py` of this package):

* `model_card`: model cards filled from a run's records (`write_model_card`, used by `train.py`);
* `repo_folder`: the folder of one model repo (`assemble_model_repo`);
* `publish`: `publish_model` (what `publish.py` and `train.py --push_to_hub` call) and the upload;
* `dataset`: the tokenised styles as a dataset repo (`assemble_dataset_repo`);
* `space`: the demo as a Gradio Space (`assemble_space`);
* `demo`: the demo's logic behind `app.py`;
* `cli`: the commands and flags of `publish.py`.

The Inference Endpoints handler is the project's top-level `handler.py`, copied into every model repo.
"""
