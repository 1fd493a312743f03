"""The network: a timm model wrapped as transformers' `TimmWrapperForImageClassification`.

- `modeling`: build and initialise it, its preprocessing (size, mean, std) and calibration temperature.
- `run_folder`: a trained model/run folder's files, read once (config, arguments, results, state, class counts).

May import: `fer_hf.data` (labels), `fer_hf.utils`.
"""
