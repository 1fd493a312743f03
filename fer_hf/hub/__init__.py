"""Publishing: staging a model folder for the Hub, its model card, the static Space's card.

- `staging`: the allow-listed folder that is uploaded, timm-layout weights, token checks, the upload.
- `model_card`: the card from a run folder and evaluation results; `space_card`: the static site's README.

May import: data (labels), evaluation (the suite's names), models, utils. Reachability lives in `fer_hf.utils.offline`
so that data, which needs it for Hub datasets, does not import hub.
"""
