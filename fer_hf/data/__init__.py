"""Data: from a source's files to harmonised, lazily decoded training and evaluation sets.

- `labels`: the seven canonical classes and every source's names for them (mapping by name, never by id).
- `sources`: specs (synthetic, a local folder, a Hub id) -> one `DatasetDict` with a `source` column; splits,
  vote targets, a second label source.
- `transforms`: image decoding (any mode, EXIF, bad files -> None), augmentation, the batch collator.
- `synthetic`: the embedded demo faces; `prepare`: raw formats (FER2013 csv, FER+ votes, RAF-DB, AffectNet) ->
  Hub-layout folders; `dataset_card`: their README.

May import: `fer_hf.utils`. Nothing here imports models, training, evaluation, inference, export or hub.
"""
